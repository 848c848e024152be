"""Task: an algorithm that turns a sampled graph into inputs, outputs and hints on a Graph.

How a :class:`~hookgnn.tasks.samplers.SampledGraph` is stored (one graph, ``n`` nodes):

* edges ``0 .. n-1`` are the self-loops ``i -> i`` (weight 0), so that a node can point
  to itself;
* then every sampled edge in order: an undirected edge ``{u, v}`` as the pair
  ``u -> v, v -> u`` (consecutive), a directed one as ``u -> v``, and a self-loop of
  the sampled graph (CLRS's diagonal of ``A``) as one more edge ``u -> u``: it changes
  no output, only the articulation-point and bridge trajectories (CLRS spends one step
  when a node inspects its own self-loop). Parallel edges are
  kept; an algorithm sees, for each ordered pair ``(u, v)``, the *minimum* weight of
  its parallel edges (and, for bridges, their multiplicity);
* weights are stored as float32 (field ``w``), and every weight that enters a task
  (:meth:`Task.run`, :meth:`Task.run_edges`, :meth:`Task.rerun`, the corruptions) is
  rounded to float32 *before* the algorithm runs, which then computes in float64 on
  exactly the stored values. So the labels follow the algorithm on the stored ``w``
  (weights that differ only below float32 precision are ties), and rerunning a stored
  :class:`Graph` gives the same answers.

Pointer rule. A pointer ``pi[v] = u`` is stored (see :mod:`hookgnn.spec`) as a 1 on
one edge ``u -> v``: the lowest-index edge among the minimum-weight stored edges
``u -> v``, weights being the stored ``w``. Tasks without input ``w`` (BFS, DFS,
articulation points, bridges) store no weights and ignore any they are given, so for
them the pointer goes on the *lowest-index* edge ``u -> v``. For ``u = v`` the edge is
the self-loop ``v``. :meth:`Task.run` and :meth:`Task.rerun` apply the same rule.

Inputs (CLRS convention). Every task has the node input ``pos`` (scalar): node ``i`` of
an ``n``-node graph gets ``i / n`` unless :meth:`Task.run_edges` is given other
positions. Every tie rule of the algorithms ("lowest index first": roots and
neighbours in DFS order, the first-found parent, Dijkstra's and Prim's extraction)
reads the *order of* ``pos``, so node indices carry no information the model cannot
see: renumbering a graph's nodes, with ``pos`` renumbered alike, renumbers every label.
:class:`Task` adds ``pos`` to every subclass's spec (as the last input column of ``x``),
so new tasks get it too.
CLRS's other inputs are carried as follows: ``adj`` (the edge mask with self-loops)
is the stored ``edge_index`` itself; ``A`` is ``w`` for the weighted tasks, and for
the unweighted ones its non-zero pattern is again ``edge_index`` (the labels depend
on no other information in it); ``s`` is ``s``.

Unless a task says otherwise, ``x`` stacks the node inputs ([N, 1] of ones when there
are none) and ``edge_attr`` the edge inputs ([E, 1] of ones when there are none); every
input, output and hint is also a field under its spec name, hints with a leading time
axis ``[T, ...]``, and the graph field ``num_steps`` [G] (long) holds each graph's
trajectory length ``T_i``. Hint step 0 is the initial state and step ``T_i - 1`` the
final state, which equals the outputs. Hints live on nodes (``[T, N, ...]``) or edges
(``[T, E]``), so a trajectory costs ``O(T (N + E))`` memory; the algorithms read
sparse neighbour lists (:mod:`hookgnn.tasks.adjacency`), never dense ``n x n`` matrices.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import torch
from jaxtyping import Float, Int

from hookgnn.graph import Field, Graph
from hookgnn.spec import FeatureSpec, Spec
from hookgnn.tasks.adjacency import Adjacency, adjacency, first_of_runs
from hookgnn.tasks.positions import node_positions, unrank
from hookgnn.tasks.samplers import SAMPLERS, SampledGraph, Seed, as_generator


def stored_edges(g: SampledGraph) -> tuple[Int[np.ndarray, "2 edge"], Float[np.ndarray, " edge"]]:
    """The stored edge list of a sampled graph: self-loops first, then the sampled edges.

    >>> from hookgnn.tasks.samplers import path_graph
    >>> ei, w = stored_edges(path_graph(3, weights=(1.0, 1.0)))
    >>> ei.tolist(), w.tolist()
    ([[0, 1, 2, 0, 1, 1, 2], [0, 1, 2, 1, 0, 2, 1]], [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    """
    src, dst, w = g.src, g.dst, g.weight
    if not g.directed:  # u -> v then v -> u for each edge; a self-loop once
        idx = np.repeat(np.arange(src.shape[0]), np.where(src == dst, 1, 2))
        second = np.zeros(idx.shape[0], dtype=bool)
        second[1:] = idx[1:] == idx[:-1]
        src, dst, w = np.where(second, dst[idx], src[idx]), np.where(second, src[idx], dst[idx]), w[idx]
    loops = np.arange(g.num_nodes, dtype=np.int64)
    edge_index = np.stack([np.concatenate([loops, src]), np.concatenate([loops, dst])])
    return edge_index, stored_weights(np.concatenate([np.zeros(g.num_nodes), w]), edge_index.shape[1])


def encode_pointers(
    pi: Int[np.ndarray, "*time node"], edge_index: Int[np.ndarray, "2 edge"], weight: Float[np.ndarray, " edge"]
) -> Float[np.ndarray, "*time edge"]:
    """Node pointers ``pi[..., v] = u`` as 0/1 masks over the stored edges.

    .. math:: m[e] = 1 \\iff e = \\min \\arg\\min_{e' : u \\to v} w[e'],\\ u = \\pi[v]

    (for ``u = v`` simply the lowest-index self-loop of ``v``).

    Pass zeros as ``weight`` for the lowest-index rule. Memory and time are
    ``O(T (n + E) + E log E)`` for ``T`` steps (no ``n x n`` table).

    >>> ei = np.array([[0, 1, 0, 1], [0, 1, 1, 0]])
    >>> encode_pointers(np.array([0, 0]), ei, np.zeros(4)).tolist()
    [1.0, 0.0, 1.0, 0.0]
    """
    n = int(pi.shape[-1])
    src, dst = (np.asarray(r, dtype=np.int64) for r in edge_index)
    weight = np.where(src == dst, 0.0, weight)  # a pointer to self: the lowest-index self-loop
    order = np.lexsort((np.arange(src.shape[0]), weight, dst, src))  # by (src, dst, weight, index)
    sorted_keys = src[order] * n + dst[order]
    first = first_of_runs(sorted_keys)
    keys, chosen = sorted_keys[first], order[first]  # one edge per ordered pair, keys increasing
    want = pi.astype(np.int64) * n + np.arange(n)
    pos = np.minimum(np.searchsorted(keys, want), max(keys.shape[0] - 1, 0))
    missing = keys[pos] != want if keys.size else np.ones(want.shape, dtype=bool)
    if missing.any():
        where = tuple(np.argwhere(missing)[0])
        raise ValueError(f"node {int(where[-1])} points to {int(pi[where])} but there is no such edge")
    out = np.zeros(pi.shape[:-1] + (src.shape[0],), dtype=np.float32)
    rows = out.reshape(-1, src.shape[0])
    rows.reshape(-1)[(np.arange(rows.shape[0]) * src.shape[0])[:, None] + chosen[pos.reshape(rows.shape[0], n)]] = 1.0
    return out


def stored_weights(weight: np.ndarray, num_edges: int) -> Float[np.ndarray, " edge"]:
    """Weights as a task stores them: rounded to float32, returned as float64 for the algorithm.

    >>> stored_weights(np.array([1.0, 1.0 + 2**-30]), 2).tolist()  # equal once stored
    [1.0, 1.0]
    """
    w = np.asarray(weight)
    if w.shape != (num_edges,):
        raise ValueError(f"weight must have shape [{num_edges}] (one per stored edge), got {w.shape}")
    if not (np.issubdtype(w.dtype, np.floating) or np.issubdtype(w.dtype, np.integer)):
        raise ValueError(f"weight must be real numbers, got dtype {w.dtype}")
    with np.errstate(over="ignore"):
        w32 = w.astype(np.float32)
    bad = ~np.isfinite(w32)
    if bad.any():
        e = int(np.flatnonzero(bad)[0])
        raise ValueError(f"weight of edge {e} is {w[e]!r}, not finite as float32 (weights are stored as float32)")
    return w32.astype(np.float64)


#: CLRS's node positions, an input of every task: ``i / n`` by default (see the module doc).
POS = FeatureSpec("input", "node", "scalar")


class Task(ABC):
    """An algorithm with a CLRS-style spec; subclasses implement :meth:`algorithm`.

    Class attributes: ``name``, ``spec``, ``needs_source`` (the task has input ``s``),
    ``uses_weights`` (input ``w``), ``undirected_only`` (reject non-symmetric graphs),
    ``acyclic_only`` (reject graphs with a directed cycle; an undirected edge is one),
    ``nonnegative`` (reject negative weights), ``clrs_names`` (fields named otherwise
    than in CLRS-30). Every subclass's ``spec`` gets the input
    ``pos`` (last, so ``x[:, -1]`` is ``pos``), unless it names ``pos`` itself.

    >>> class Reach(Task):
    ...     name, spec = "reach_demo", {"seen": FeatureSpec("output", "node", "mask")}
    ...     def algorithm(self, adj, source):
    ...         return {"seen": np.ones(adj.num_nodes, dtype=bool)}
    >>> list(Reach.spec)
    ['seen', 'pos']
    """

    name: ClassVar[str]
    spec: ClassVar[Spec]
    needs_source: ClassVar[bool] = False
    uses_weights: ClassVar[bool] = False
    undirected_only: ClassVar[bool] = False
    acyclic_only: ClassVar[bool] = False
    nonnegative: ClassVar[bool] = False
    clrs_names: ClassVar[Mapping[str, str]] = MappingProxyType({})
    """Fields whose CLRS-30 name differs (hookgnn name -> CLRS name); every other field has CLRS's name.

    >>> from hookgnn.tasks import get_task
    >>> dict(get_task("bellman_ford").clrs_names), dict(get_task("bfs").clrs_names)
    ({'d_h': 'd'}, {})
    """

    @abstractmethod
    def algorithm(self, adj: Adjacency, source: int) -> dict[str, np.ndarray]:
        """Outputs and hints of one graph, by spec name, in raw form.

        The algorithm sees the nodes numbered in the order of ``pos`` (so "lowest index"
        means "lowest ``pos``"); :meth:`run_edges` numbers them back. Pointers are node
        indices (``pi[v] = u``), categoricals integer codes, edge
        features ``[E]`` arrays over the stored edges (``adj.arc_of_edge`` maps an edge to
        its arc), other node features their stored value; hints carry a leading time
        axis ``[T, ...]``. Keep hints ``O(T (n + E))``: no ``n x n`` state per step.
        """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if spec is not None and "pos" not in spec:
            cls.spec = {**spec, "pos": POS}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # ---------------------------------------------------------------- running
    def run(self, g: SampledGraph, source: int | None = None, seed: Seed = None) -> Graph:
        """Run on one sampled graph; the source is ``source``, else ``g.source``, else drawn
        from ``seed``. Returns a single-graph :class:`Graph`.

        >>> from hookgnn.tasks import get_task
        >>> from hookgnn.tasks.samplers import path_graph
        >>> g = get_task("bfs").run(path_graph(3), source=2)
        >>> g["reach"].tolist(), int(g["num_steps"][0])
        ([1.0, 1.0, 1.0], 3)
        """
        if source is None:
            source = g.source
        if source is None:
            source = int(as_generator(seed).integers(g.num_nodes)) if self.needs_source else 0
        edge_index, weight = stored_edges(g)
        return self.run_edges(edge_index, weight, g.num_nodes, source)

    def run_edges(
        self, edge_index: Int[np.ndarray, "2 edge"], weight: np.ndarray, num_nodes: int, source: int = 0,
        pos: Float[np.ndarray, " node"] | None = None,
    ) -> Graph:
        """Run on a stored edge list (every node needs a self-loop) and build the Graph.

        ``weight`` [E] is rounded to float32 first (what ``w`` stores); tasks without
        input ``w`` ignore it and put pointers on the lowest-index edge (see the module
        doc). ``pos`` [n] (distinct, finite; rounded to float32 like every stored input)
        defaults to ``i / n``; the algorithm breaks ties by its order, so renumbering
        the nodes together with ``pos`` renumbers the labels.

        >>> from hookgnn.tasks import get_task
        >>> ei = np.array([[0, 1, 0], [0, 1, 1]])  # two self-loops and the arc 0 -> 1
        >>> get_task("dijkstra").run_edges(ei, np.array([0.0, 0.0, 0.5]), 2, 0)["d"].tolist()
        [0.0, 0.5]
        """
        edge_index, weight, pos = self.checked_edges(edge_index, weight, num_nodes, source, pos)
        order = np.argsort(pos, kind="stable")  # order[r]: the node of rank r
        rank = np.empty_like(order)
        rank[order] = np.arange(num_nodes)
        adj = adjacency(rank[edge_index], weight, num_nodes)
        if self.undirected_only and not adj.symmetric:
            raise ValueError(f"{self.name} needs an undirected graph (every edge u -> v matched by v -> u)")
        if self.nonnegative and (weight[edge_index[0] != edge_index[1]] < 0).any():
            raise ValueError(f"{self.name} needs non-negative edge weights")
        raw = self.algorithm(adj, int(rank[source]))
        raw = {k: unrank(self.spec[k], np.asarray(v), rank, order) for k, v in raw.items() if k in self.spec}
        return self._build(raw, edge_index, weight, num_nodes, source, pos)

    def checked_edges(
        self, edge_index: Int[np.ndarray, "2 edge"], weight: np.ndarray, num_nodes: int, source: int,
        pos: Float[np.ndarray, " node"] | None,
    ) -> tuple[Int[np.ndarray, "2 edge"], Float[np.ndarray, " edge"], Float[np.ndarray, " node"]]:
        """The arguments of :meth:`run_edges`, checked: ``(edge_index as int64, stored weights, pos)``.

        Raises ``ValueError`` naming the problem: a malformed ``edge_index``, no nodes, an edge out
        of range (its index and endpoints), a node without a self-loop, a source out of range, a bad
        ``pos``. Weights are rounded to float32 (what ``w`` stores); tasks without input ``w`` get
        zeros (lowest-index pointers).

        >>> from hookgnn.tasks import get_task
        >>> get_task("bfs").checked_edges(np.array([[0, 1], [0, 2]]), np.zeros(2), 2, 0, None)
        Traceback (most recent call last):
        ...
        ValueError: edge 1 (1 -> 2) is out of range for 2 nodes
        """
        edge_index = np.asarray(edge_index)
        if edge_index.ndim != 2 or edge_index.shape[0] != 2 or not np.issubdtype(edge_index.dtype, np.integer):
            raise ValueError(f"edge_index must be an integer array of shape [2, E], got {edge_index.dtype} "
                             f"{edge_index.shape}")
        if num_nodes < 1:
            raise ValueError(f"a task graph needs at least one node, got num_nodes={num_nodes}")
        if edge_index.size and (edge_index.min() < 0 or edge_index.max() >= num_nodes):
            e = int(np.flatnonzero(((edge_index < 0) | (edge_index >= num_nodes)).any(0))[0])
            raise ValueError(f"edge {e} ({edge_index[0, e]} -> {edge_index[1, e]}) is out of range for "
                             f"{num_nodes} nodes")
        edge_index = edge_index.astype(np.int64)
        weight = stored_weights(weight, edge_index.shape[1])
        if not self.uses_weights:
            weight = np.zeros_like(weight)  # not stored, so not used: lowest-index pointers
        loops = np.zeros(num_nodes, dtype=bool)
        loops[edge_index[0][edge_index[0] == edge_index[1]]] = True
        if not loops.all():
            raise ValueError(f"node {int(np.argmin(loops))} has no self-loop; pointers to self need one")
        if not 0 <= source < num_nodes:
            raise ValueError(f"source {source} out of range for {num_nodes} nodes")
        return edge_index, weight, node_positions(num_nodes, pos)

    def rerun(self, g: Graph, source: int | None = None, weight: np.ndarray | None = None) -> Graph:
        """Recompute a single stored graph, optionally with a new source or weights ``[E]``
        (rounded to float32 like every weight; see :meth:`run_edges`).

        >>> from hookgnn.tasks import get_task
        >>> from hookgnn.tasks.samplers import path_graph
        >>> bf = get_task("bellman_ford")
        >>> g = bf.run(path_graph(3, weights=(1.0, 1.0)), source=0)
        >>> bf.rerun(g, source=2)["d"].tolist()
        [2.0, 1.0, 0.0]
        """
        if g.num_graphs != 1:
            raise ValueError(f"rerun takes a single graph, got a batch of {g.num_graphs}")
        ei = g.edge_index.cpu().numpy()
        if weight is None:
            weight = g["w"].double().cpu().numpy() if self.uses_weights else np.zeros(g.num_edges)
        if source is None:
            source = int(g["s"].argmax()) if self.needs_source else 0
        pos = g["pos"].double().cpu().numpy() if "pos" in g.fields else None
        return self.run_edges(ei, weight, g.num_nodes, source, pos)

    def resume(self, graph: Graph, step: int, hints: Mapping[str, torch.Tensor] | None = None) -> Graph:
        """The algorithm re-run on the single stored ``graph`` from hint step ``step``, its state
        there being the graph's hints at ``step`` with ``hints`` (stored form, by spec name)
        written over them: the counterfactual of an interchange intervention
        (:mod:`hookgnn.tasks.resume`). Tasks that can resume override this.

        >>> from hookgnn.tasks import get_task
        >>> bfs = get_task("bfs")
        >>> g = bfs.sample(1, seed=0, n=5)
        >>> torch.equal(bfs.resume(g, 1)["reach"], g["reach"])  # its own hints: the same run
        True

        :param graph: one stored graph of this task, with its hints.
        :param step: the hint step to resume from.
        :param hints: hint values (stored form, by spec name) written over the graph's at ``step``;
            ``None``: the graph's own.
        """
        raise NotImplementedError(f"{self.name} cannot resume from an intermediate state; Bellman-Ford, BFS, "
                                  "Dijkstra and Prim can (hookgnn.tasks.resume)")

    def sample(self, num_graphs: int, sampler: str | Callable[..., SampledGraph] = "erdos_renyi",
               seed: Seed = None, **sampler_kwargs: Any) -> Graph:
        """A collated batch of ``num_graphs`` task graphs drawn from ``sampler``.

        ``sampler`` is a name in :data:`~hookgnn.tasks.samplers.SAMPLERS` or a callable
        taking ``seed=`` plus ``sampler_kwargs``. Equal seeds give equal batches, and
        every task gets the same graphs from the same seed (sources come from a
        separate stream).

        >>> from hookgnn.tasks import TASKS
        >>> a = TASKS["bfs"].sample(3, "grid", seed=1, rows=2, cols=2)
        >>> b = TASKS["dfs"].sample(3, "grid", seed=1, rows=2, cols=2)
        >>> bool((a.edge_index == b.edge_index).all()), a.num_nodes
        (True, 12)
        """
        if num_graphs < 1:
            raise ValueError(f"num_graphs must be >= 1, got {num_graphs}")
        if isinstance(sampler, str):
            if sampler not in SAMPLERS:
                raise KeyError(f"unknown sampler {sampler!r}; known: {sorted(SAMPLERS)}")
            sampler = SAMPLERS[sampler]
        graph_rng, source_rng = as_generator(seed).spawn(2)  # same seed: same graphs for every task
        return Graph.collate([self.run(sampler(seed=graph_rng, **sampler_kwargs), seed=source_rng)
                              for _ in range(num_graphs)])

    # ---------------------------------------------------------------- storing
    def _build(self, raw: Mapping[str, np.ndarray], edge_index: np.ndarray, weight: np.ndarray,
               num_nodes: int, source: int, pos: np.ndarray) -> Graph:
        fields: dict[str, Field] = {}
        steps = None
        for name, fs in self.spec.items():
            if fs.stage == "input":
                value = _input(name, num_nodes, source, weight, pos)
            else:
                value = _store(fs, np.asarray(raw[name]), edge_index, weight)
            if fs.stage == "hint":
                steps = value.shape[0] if steps is None else steps
                if value.shape[0] != steps:
                    raise AssertionError(f"hint {name!r} has {value.shape[0]} steps, others {steps}")
            fields[name] = Field(torch.from_numpy(value), fs.field_location, time=fs.stage == "hint")
        fields["num_steps"] = Field(torch.tensor([steps or 1]), "graph")
        return Graph(
            x=_stack_inputs(fields, self.spec, "node", num_nodes),
            edge_index=torch.from_numpy(np.ascontiguousarray(edge_index)),
            edge_attr=_stack_inputs(fields, self.spec, "edge", edge_index.shape[1]),
            fields=fields,
        )


def _input(name: str, num_nodes: int, source: int, weight: np.ndarray, pos: np.ndarray) -> np.ndarray:
    if name == "pos":
        return pos
    if name == "s":
        s = np.zeros(num_nodes, dtype=np.float32)
        s[source] = 1.0
        return s
    if name == "w":
        return weight.astype(np.float32)
    raise NotImplementedError(f"no rule to build input {name!r}")


def _store(fs: FeatureSpec, value: np.ndarray, edge_index: np.ndarray, weight: np.ndarray) -> np.ndarray:
    if fs.type == "pointer":
        return encode_pointers(value.astype(np.int64, copy=False), edge_index, weight)
    if fs.location == "edge" and value.shape[-1] != edge_index.shape[1]:
        raise AssertionError(f"edge feature has {value.shape[-1]} entries for {edge_index.shape[1]} stored edges")
    if fs.type == "categorical":
        return np.eye(fs.dim, dtype=np.float32)[value if np.issubdtype(value.dtype, np.integer) else value.astype(np.int64)]
    return value.astype(np.float32, copy=False)


def _stack_inputs(fields: Mapping[str, Field], spec: Spec, location: str, rows: int) -> torch.Tensor:
    cols = [fields[k].value.reshape(rows, -1) for k, fs in spec.items()
            if fs.stage == "input" and fs.field_location == location]
    return torch.cat(cols, 1) if cols else torch.ones(rows, 1)

