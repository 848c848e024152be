"""Tasks whose state joins nodes that no edge joins: pointers to any node, and *pointer edges*.

A node pointer is normally stored on an edge ``u -> v`` (:mod:`hookgnn.spec`), so it can
only point along a stored edge. Topological sort's ``topo``, Kosaraju's ``scc_id`` and
Kruskal's union-find ``pi`` point to nodes that are no in-neighbours; CLRS stores every
graph as complete, with the edge mask ``adj``, which costs ``T x n^2`` per trajectory.
Here they are *pointers to any node* (``FeatureSpec(..., "pointer", any_node=True)``):
stored as the target's in-graph node number, one integer per node per step (``[T, n]``
int64, as Floyd-Warshall's edge pointer ``Pi``), and decoded by scoring every node against
every node of its graph at decode time (logits ``[N, K]``, never stored;
:func:`~hookgnn.spec.pointer_slots`). So their trajectories cost ``O(T n)`` and add no
edge. Edge features that live on pairs no edge joins still need stored edges: a
:class:`PointerEdgeTask` stores

* edges ``0 .. n-1``: the self-loops; then the sampled edges (as :mod:`hookgnn.tasks.base`);
* then one *pointer edge* ``u -> v`` for every ordered pair of :meth:`PointerEdgeTask.pointer_pairs`
  that no stored edge joins, sorted by the ``pos`` ranks of ``(u, v)`` (so renumbering the
  nodes with ``pos`` keeps every row),

and the edge input ``adj`` (CLRS's name) is 1 on the first two groups and 0 on pointer
edges, so a model tells them apart; ``w`` is 0 on pointer edges. The algorithm sees only
the graph's own edges. ``pointer_pairs`` depends on the graph's structure only (never on
``s``, ``w`` or labels), so a corruption that keeps the graph keeps every stored row, and
clean/corrupted pairs patch row for row (node numbers too: they name nodes, not rows).
Each task takes the smallest set its edge state needs, so sparse graphs stay sparse:

======================================  ===============================================
task                                    pointer pairs
======================================  ===============================================
``topological_sort``, ``mst_kruskal``,  none (``topo``, ``pi``, ``topo_h`` point to any
``dag_shortest_paths``                  node; every other pointer along an arc)
``strongly_connected_components``       reversed arcs (the second DFS pushes ``s_prev``
                                        along them; ``A_t`` lives on them): ``<= E``
``floyd_warshall``                      every ordered pair (its state ``D``, ``msk``,
                                        ``Pi`` is dense: the algorithm's own)
======================================  ===============================================

Cost: a trajectory of ``T`` steps stores ``O(T (n + E))`` values for the first four tasks
(docs/guide/tasks.md measures it at ``n = 64``); only Floyd-Warshall's is ``O(T n^2)``,
its own dense state.

Ties follow ``pos`` (CLRS's node input ``i / n``, added to every task by
:class:`~hookgnn.tasks.base.Task`): the algorithm runs on the nodes renumbered by
increasing ``pos`` and its labels are mapped back (:func:`~hookgnn.tasks.positions.unrank`),
so renumbering a graph's nodes with ``pos`` alike renumbers every label.
"""

from __future__ import annotations

from abc import abstractmethod
import numpy as np
import torch
from jaxtyping import Bool, Float, Int

from hookgnn.graph import Field, Graph
from hookgnn.spec import is_numbered_pointer
from hookgnn.tasks.adjacency import Adjacency, adjacency
from hookgnn.tasks.base import Task, _input, _stack_inputs, _store, stored_edges
from hookgnn.tasks.positions import unrank
from hookgnn.tasks.samplers import SampledGraph, Seed, as_generator


def components(adj: Adjacency, strong: bool = False) -> Int[np.ndarray, " node"]:
    """A component id per node: weakly connected (``strong=False``) or strongly connected.

    >>> a = adjacency(np.array([[0, 1, 2], [1, 0, 3]]), np.zeros(3), 4)  # 0 <-> 1, 2 -> 3
    >>> components(a).tolist(), components(a, strong=True).tolist()
    ([0, 0, 1, 1], [0, 0, 1, 2])
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    n = adj.num_nodes
    mat = csr_matrix((np.ones(adj.num_arcs), (adj.src, adj.dst)), shape=(n, n))
    _, labels = connected_components(mat, directed=True, connection="strong" if strong else "weak")
    _, first = np.unique(labels, return_index=True)  # renumber by lowest member: deterministic
    remap = np.empty(labels.max() + 1 if n else 0, dtype=np.int64)
    remap[labels[np.sort(first)]] = np.arange(first.shape[0])
    return remap[labels]


def pairs_within(groups: Int[np.ndarray, " node"]) -> Int[np.ndarray, "2 pair"]:
    """Every ordered pair ``u != v`` with ``groups[u] == groups[v]``.

    >>> pairs_within(np.array([0, 1, 0])).tolist()
    [[0, 2], [2, 0]]
    """
    u, v = np.nonzero((groups[:, None] == groups[None, :]) & ~np.eye(groups.shape[0], dtype=bool))
    return np.stack([u, v]).astype(np.int64)


def check_acyclic(adj: Adjacency, task: str) -> None:
    """Raise unless the graph's arcs form a DAG (every strongly connected component one node)."""
    scc = components(adj, strong=True)
    if np.unique(scc).shape[0] != adj.num_nodes:
        cyc = np.flatnonzero(scc == np.flatnonzero(np.bincount(scc) > 1)[0]).tolist()
        raise ValueError(f"{task} needs a directed acyclic graph; nodes {cyc} lie on a directed cycle "
                         "(an undirected edge is a 2-cycle): sample DAGs, e.g. with the sampler 'clrs_topological_sort' or "
                         "hookgnn.tasks.pointer_edges.er_dag")


def all_pairs(n: int) -> Int[np.ndarray, "2 pair"]:
    """Every ordered pair ``u != v`` of ``n`` nodes."""
    return pairs_within(np.zeros(n, dtype=np.int64))


def no_pairs() -> Int[np.ndarray, "2 pair"]:
    """No pointer pairs: the task stores the graph's own edges only."""
    return np.zeros((2, 0), dtype=np.int64)


def er_dag(n: int = 16, p: float = 0.5, *, seed: Seed = None, weights: tuple[float, float] = (0.0, 1.0)
           ) -> SampledGraph:
    """A random DAG as CLRS samples one: arcs ``i -> j`` (``i < j``) w.p. ``p``, nodes then shuffled.

    >>> g = er_dag(5, 1.0, seed=0)
    >>> g.directed, g.num_edges
    (True, 10)

    :param n: the number of nodes.
    :param p: the probability of each arc ``i -> j``, ``i < j``.
    :param seed: a seed or generator.
    :param weights: the range the arc weights are drawn from (uniformly).
    """
    rng = as_generator(seed)
    u, v = np.triu_indices(n, k=1)
    keep = rng.random(u.shape[0]) < p
    perm = rng.permutation(n)
    w = rng.uniform(weights[0], weights[1], size=int(keep.sum()))
    return SampledGraph(n, perm[u[keep]], perm[v[keep]], w, directed=True)


class PointerEdgeTask(Task):
    """A :class:`Task` stored with pointer edges where its edge state needs them (module doc),
    labelled on its stored edges; subclasses implement :meth:`pointer_pairs` (none for most)
    and :meth:`label`.

    >>> from hookgnn.tasks import get_task
    >>> topo = get_task("topological_sort")
    >>> isinstance(topo, PointerEdgeTask), topo.spec["topo"].type, topo.spec["topo"].any_node
    (True, 'pointer', True)
    """

    @abstractmethod
    def pointer_pairs(self, adj: Adjacency) -> Int[np.ndarray, "2 pair"]:
        """The ordered pairs ``(u, v)`` this task's pointers may join, from the structure alone."""

    @abstractmethod
    def label(self, adj: Adjacency, source: int, edges: Int[np.ndarray, "2 edge"],
              weight: Float[np.ndarray, " edge"]) -> dict[str, np.ndarray]:
        """Outputs and hints on nodes numbered by ``pos`` rank (as :meth:`Task.algorithm`); edge
        features ``[..., E]`` over ``edges`` (with stored weights ``weight``), every stored edge
        including pointer edges; edge pointers as node numbers."""

    def algorithm(self, adj: Adjacency, source: int) -> dict[str, np.ndarray]:
        raise NotImplementedError(f"{self.name} labels through label(), on its stored edges with pointer edges")

    # ---------------------------------------------------------------- running
    def run(self, g: SampledGraph, source: int | None = None, seed: Seed = None) -> Graph:
        if source is None:
            source = g.source
        if source is None:
            source = int(as_generator(seed).integers(g.num_nodes)) if self.needs_source else 0
        edge_index, weight = stored_edges(g)
        return self.run_edges(edge_index, weight, g.num_nodes, source)

    def run_edges(self, edge_index: Int[np.ndarray, "2 edge"], weight: np.ndarray, num_nodes: int,
                  source: int = 0, pos: Float[np.ndarray, " node"] | None = None) -> Graph:
        """Run on the graph's own stored edges (a self-loop per node; no pointer edges): pointer
        edges are appended, then the labels computed. ``pos`` defaults to ``i / n``.

        >>> from hookgnn.tasks import get_task
        >>> g = get_task("strongly_connected_components").run_edges(np.array([[0, 1, 0], [0, 1, 1]]), np.zeros(3), 2)
        >>> g.edge_index.tolist(), g["adj"].tolist()  # the reversed arc 1 -> 0 appended
        ([[0, 1, 0, 1], [0, 1, 1, 0]], [1.0, 1.0, 1.0, 0.0])
        """
        edge_index, weight, pos = self.checked_edges(edge_index, weight, num_nodes, source, pos)
        adj = adjacency(edge_index, weight, num_nodes)
        if self.undirected_only and not adj.symmetric:
            raise ValueError(f"{self.name} needs an undirected graph (every edge u -> v matched by v -> u)")
        if self.nonnegative and (weight < 0).any():  # self-loops too: Floyd-Warshall reads them
            raise ValueError(f"{self.name} needs non-negative edge weights (edge {int(np.argmax(weight < 0))} has "
                             f"{float(weight.min())})")
        if self.acyclic_only:
            check_acyclic(adj, self.name)
        order = np.argsort(pos, kind="stable")  # order[r]: the node of rank r
        rank = np.empty(num_nodes, dtype=np.int64)
        rank[order] = np.arange(num_nodes)
        extra = order[_missing_pairs(rank[self.pointer_pairs(adj)], rank[edge_index], num_nodes)]
        full = np.concatenate([edge_index, extra], axis=1)
        is_edge = np.arange(full.shape[1]) < edge_index.shape[1]
        full_w = np.concatenate([weight, np.zeros(extra.shape[1])])
        adj_r = adjacency(rank[edge_index], weight, num_nodes)
        raw = self.label(adj_r, int(rank[source]), rank[full], full_w)
        raw = {k: unrank(self.spec[k], np.asarray(v), rank, order) for k, v in raw.items()}
        return self._build_with(raw, full, full_w, is_edge, num_nodes, source, pos)

    def rerun(self, g: Graph, source: int | None = None, weight: np.ndarray | None = None) -> Graph:
        """Recompute a single stored graph (pointer edges dropped, then the same ones added again),
        optionally with a new source or weights ``[E]`` (ignored on pointer edges)."""
        if g.num_graphs != 1:
            raise ValueError(f"rerun takes a single graph, got a batch of {g.num_graphs}")
        own = g["adj"].cpu().numpy() > 0.5
        m = int(own.sum())
        if not own[:m].all():
            raise ValueError("the graph's own edges (adj = 1) must come before its pointer edges (adj = 0)")
        ei = g.edge_index.cpu().numpy()[:, :m]
        if weight is None:
            weight = g["w"].double().cpu().numpy() if self.uses_weights else np.zeros(g.num_edges)
        if source is None:
            source = int(g["s"].argmax()) if self.needs_source else 0
        pos = g["pos"].double().cpu().numpy() if "pos" in g.fields else None
        return self.run_edges(ei, np.asarray(weight)[:m], g.num_nodes, source, pos)

    # ---------------------------------------------------------------- storing
    def _build_with(self, raw: dict[str, np.ndarray], edge_index: np.ndarray, weight: np.ndarray,
                    is_edge: Bool[np.ndarray, " edge"], num_nodes: int, source: int, pos: np.ndarray) -> Graph:
        fields: dict[str, Field] = {}
        steps = None
        for name, fs in self.spec.items():
            if fs.stage == "input":
                value = _own_input(name, is_edge, pos, num_nodes, source, weight)
            elif is_numbered_pointer(fs):  # in-graph node numbers (a single graph: node indices)
                value = np.asarray(raw[name], dtype=np.int64)
            else:
                value = _store(fs, np.asarray(raw[name]), edge_index, weight)
            if fs.stage == "hint":
                steps = value.shape[0] if steps is None else steps
                if value.shape[0] != steps:
                    raise AssertionError(f"hint {name!r} has {value.shape[0]} steps, others {steps}")
            fields[name] = Field(torch.from_numpy(np.ascontiguousarray(value)), fs.field_location,
                                 time=fs.stage == "hint")
        fields["num_steps"] = Field(torch.tensor([steps or 1]), "graph")
        return Graph(x=_stack_inputs(fields, self.spec, "node", num_nodes),
                     edge_index=torch.from_numpy(np.ascontiguousarray(edge_index)),
                     edge_attr=_stack_inputs(fields, self.spec, "edge", edge_index.shape[1]), fields=fields)


def _missing_pairs(pairs: np.ndarray, edge_index: np.ndarray, n: int) -> Int[np.ndarray, "2 pair"]:
    """The pairs no stored edge joins, unique, sorted by ``(u, v)`` (given as ``pos`` ranks)."""
    keys = np.unique(pairs[0] * n + pairs[1]) if pairs.size else np.zeros(0, dtype=np.int64)
    keys = keys[~np.isin(keys, edge_index[0] * n + edge_index[1])]
    return np.stack([keys // n, keys % n]).astype(np.int64)


def _own_input(name: str, is_edge: np.ndarray, pos: np.ndarray, num_nodes: int, source: int,
               weight: np.ndarray) -> np.ndarray:
    if name == "adj":
        return is_edge.astype(np.float32)
    return _input(name, num_nodes, source, weight, pos)
