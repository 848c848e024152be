"""What a ground truth is: a hand-set network, its clean/corrupted pairs and the circuit known by construction.

A :class:`GroundTruth` bundles

* ``model``: a :class:`~hookgnn.models.HookedGNN` on one of hookgnn's own processors, every
  weight set by hand, so every method of hookgnn (``patch``, ``attribute``, ``eap``,
  ``atp_star``, ``evaluate``, ``verify``) runs on it unchanged;
* ``metric``: :class:`QueryValue`, the output at the queried node(s) (the graph field ``query``);
* :meth:`GroundTruth.sample_pairs`: :class:`Pair` s of (clean, corrupted) graphs with the same
  structure, each with its known message-level circuit and its minimal sufficient subsets;
* ``weight_circuit``: the known circuit at neuron level, as the
  :class:`~hookgnn.patching.components.WeightEdge` s (of every round) that carry the computation;
  every other weight edge feeds only channels that nothing downstream reads.

The circuits are known *under resample and zero ablation* (everything outside the circuit set
to its value in the corrupted run, or to zero): then the circuit alone gives exactly the clean
metric. Mean ablation is not part of the guarantee (a mean state can win a min or add to a sum);
the benchmark reports how far the known circuit gets under it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from hookgnn.graph import Field, Graph
from hookgnn.models import HookedGNN
from hookgnn.nn.wiring import links_of
from hookgnn.ops import scatter
from hookgnn.patching.components import Component, MessageEdge, WeightEdge, message_edges, weight_edges
from hookgnn.patching.results import Direction, check_direction


@dataclass(frozen=True)
class QueryValue:
    """The raw node output ``name`` summed over the graph's queried nodes (node field ``query``, 0/1).

    .. math:: m(G) = \\sum_v q_v\\, \\hat y_v

    The query is read from the graph the metric receives; hookgnn's patching and circuit
    functions hand it the clean graph's fields (:func:`~hookgnn.metrics.clean_targets`).
    Raises ``KeyError`` naming the field when the graph has no ``query`` field.

    >>> from hookgnn.models import ModelOutput
    >>> g = Graph(x=torch.zeros(3, 1), edge_index=torch.zeros(2, 0, dtype=torch.long),
    ...           fields={"query": Field(torch.tensor([0., 1., 0.]), "node")})
    >>> QueryValue("d")(ModelOutput({"d": torch.tensor([5., 7., 9.])}), g).tolist()
    [7.0]

    :param name: the node output to read.
    :param field: the 0/1 node field that marks the queried nodes.
    """

    name: str
    field: str = "query"

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]:
        if self.field not in graph.fields:
            raise KeyError(f"QueryValue({self.name!r}) reads the node field {self.field!r}, which this graph lacks "
                           f"(fields: {sorted(graph.fields)}); sample graphs with GroundTruth.sample_pairs")
        raw = out[self.name]  # type: ignore[index]
        q = graph[self.field].to(raw)
        if raw.shape != q.shape:
            raise ValueError(f"QueryValue({self.name!r}): output {tuple(raw.shape)} and query {tuple(q.shape)} "
                             "must both be one value per node")
        return scatter((raw * q).unsqueeze(-1), graph.batch, graph.num_graphs, "sum").squeeze(-1)


@dataclass(frozen=True)
class Pair:
    """One clean/corrupted pair (same ``edge_index``) and its known message-level circuit.

    ``circuit``: every message (round, edge) the queried output depends on; with everything
    else ablated (resample or zero) the metric is exactly the clean one. ``sufficient``: the
    minimal sufficient subsets of ``circuit`` (their union is ``circuit``): one for a chain or
    an AND, one per path for OR-redundant paths, any one of which alone keeps the metric.

    ``circuit`` and ``sufficient`` are the *noising* circuit (everything else ablated). Denoising
    (the corrupted run with a set's messages patched from the clean run, everything else
    recomputed) a smaller set suffices: one clean message early on a path reaches the query
    through the recomputed rest. ``sufficient_denoising``: the minimal sets :math:`S` with
    :math:`m(S) = m(U)` in that direction (:math:`U` every message); :meth:`sufficient_for` and
    :meth:`circuit_for` give either direction's sets and their union.

    >>> g = Graph(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 0], [1, 2]]))
    >>> p = Pair(g, g, frozenset({MessageEdge(0, 1, 0, 2)}))
    >>> p.sufficient == (p.circuit,) == p.sufficient_for("noising")
    True

    :param clean: the clean graph.
    :param corrupted: the corrupted graph (same ``edge_index``).
    :param circuit: every message the queried output depends on.
    :param sufficient: the minimal sufficient subsets of ``circuit`` (noising).
    :param sufficient_denoising: the minimal sufficient sets when denoising (``()``: not known).
    """

    clean: Graph
    corrupted: Graph
    circuit: frozenset[MessageEdge]
    sufficient: tuple[frozenset[MessageEdge], ...] = ()
    sufficient_denoising: tuple[frozenset[MessageEdge], ...] = ()

    def sufficient_for(self, direction: Direction) -> tuple[frozenset[MessageEdge], ...]:
        """The minimal sufficient message sets in ``direction`` (``"noising"``: ``sufficient``).

        >>> from hookgnn.groundtruth import or_reachability
        >>> p = or_reachability().sample_pairs(1, seed=0)[0]
        >>> [len(s) for s in p.sufficient_for("noising")], [len(s) for s in p.sufficient_for("denoising")]
        ([2, 2], [1, 1, 1, 1])
        """
        if check_direction(direction) == "noising":
            return self.sufficient
        if not self.sufficient_denoising:
            raise ValueError("this pair has no known denoising circuit (sufficient_denoising is empty)")
        return self.sufficient_denoising

    def circuit_for(self, direction: Direction) -> frozenset[MessageEdge]:
        """Every message of some minimal sufficient set in ``direction`` (``"noising"``: ``circuit``).

        >>> from hookgnn.groundtruth import and_conjunction
        >>> p = and_conjunction().sample_pairs(1, seed=0)[0]
        >>> p.circuit_for("denoising") == p.circuit
        True
        """
        return frozenset().union(*self.sufficient_for(direction))

    def __post_init__(self) -> None:
        if not self.sufficient:
            object.__setattr__(self, "sufficient", (self.circuit,))
        union = frozenset().union(*self.sufficient)
        if union != self.circuit:
            raise ValueError(f"the sufficient subsets must cover the circuit exactly; missing "
                             f"{sorted(self.circuit - union)[:3]}, extra {sorted(union - self.circuit)[:3]}")


Sampler = Callable[[np.random.Generator], Pair]
#: What single-component methods face: every message necessary, two needed together, or redundant paths.
Structure = Literal["chain", "and", "or"]


@dataclass(frozen=True)
class GroundTruth:
    """A hand-set network whose circuit is known by construction (see the module docstring).

    ``sampler(rng)`` draws one :class:`Pair`; :meth:`sample_pairs` draws ``n`` reproducibly.
    ``structure`` names what single-component methods face: ``"chain"`` (every message of the
    circuit is necessary), ``"and"`` (two messages needed together) or ``"or"`` (redundant paths).

    >>> from hookgnn.groundtruth import or_reachability
    >>> gt = or_reachability()
    >>> pair = gt.sample_pairs(1, seed=0)[0]
    >>> len(pair.circuit), len(pair.sufficient), gt.structure
    (4, 2, 'or')

    :param name: its key in ``GROUND_TRUTHS``.
    :param description: one line saying what the network computes.
    :param model: the hand-set network.
    :param metric: the metric whose circuit is known (the queried output).
    :param sampler: ``sampler(rng)`` draws one :class:`Pair`.
    :param weight_circuit: the known circuit at weight level.
    :param structure: ``"chain"``, ``"and"`` or ``"or"``.
    """

    name: str
    description: str
    model: HookedGNN
    metric: QueryValue
    sampler: Sampler
    weight_circuit: frozenset[WeightEdge]
    structure: Structure

    @property
    def rounds(self) -> int:
        """The number of rounds the model runs (``model.max_steps``)."""
        return self.model.max_steps

    def sample_pairs(self, n: int, seed: int = 0) -> list[Pair]:
        """``n`` pairs drawn with ``numpy.random.default_rng(seed)`` (the same ``seed``, the same pairs).

        >>> from hookgnn.groundtruth import or_reachability
        >>> gt = or_reachability()
        >>> gt.sample_pairs(2, seed=3)[1].circuit == gt.sample_pairs(2, seed=3)[1].circuit
        True
        """
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        rng = np.random.default_rng(seed)
        return [self.sampler(rng) for _ in range(n)]

    def messages(self, graph: Graph) -> list[MessageEdge]:
        """Every message (round x edge) of ``graph``: the message-level universe, round-major.

        >>> from hookgnn.groundtruth import or_reachability
        >>> gt = or_reachability()
        >>> g = gt.sample_pairs(1)[0].clean
        >>> len(gt.messages(g)) == gt.rounds * g.num_edges
        True
        """
        return message_edges(graph.edge_index, range(self.rounds), self.model)

    def weights(self) -> list[WeightEdge]:
        """Every weight edge (nonzero weights and elementwise maps, every round): the neuron-level universe.

        >>> from hookgnn.groundtruth import or_reachability
        >>> gt = or_reachability()
        >>> gt.weight_circuit < set(gt.weights())
        True
        """
        out: list[WeightEdge] = []
        widths = _widths(self.model)
        for link in links_of(self.model, range(self.rounds)):
            out += weight_edges(link, widths[link.src], widths[link.dst])
        return out

    @property
    def neurons(self) -> frozenset[Component]:
        """The neurons (``Component(hook, None, feature)``) at either end of a weight edge of the circuit."""
        return frozenset(c for e in self.weight_circuit for c in (e.src, e.dst))


def _widths(model: HookedGNN) -> dict[str, int]:
    """Feature width of every hook point of ``model`` (one forward on a two-node graph)."""
    g = Graph(x=torch.zeros(2, model.node_in), edge_index=torch.tensor([[0], [1]]),
              edge_attr=torch.zeros(1, model.edge_in) if model.edge_in else None)
    with torch.no_grad():
        _, cache = model.run_with_cache(g)
    return {k: int(v.shape[-1]) if v.dim() > 1 else 1 for k, v in cache.items()}


def with_query(g: Graph, query: int) -> Graph:
    """``g`` with the node field ``query`` (1 at node ``query``, 0 elsewhere).

    >>> with_query(Graph(x=torch.zeros(3, 1), edge_index=torch.tensor([[0], [1]])), 1)["query"].tolist()
    [0.0, 1.0, 0.0]
    """
    q = torch.zeros(g.num_nodes)
    q[query] = 1.0
    return g.with_fields(query=Field(q, "node"))


def circuit_weights(model: HookedGNN, rounds: int, inputs: dict[str, set[int]],
                    sites: dict[str, set[int]]) -> frozenset[WeightEdge]:
    """The weight edges of rounds ``0 .. rounds - 1`` whose two ends are circuit neurons.

    ``inputs`` maps hook points outside the rounds (``"hook_node_embed"``, ``"hook_edge_embed"``)
    to their circuit features; ``sites`` maps a per-round site (``"hook_src"``,
    ``"message_mlp.hook_pre"`` ...) to its circuit features in every round (the hook names come
    from the model's rounds protocol, ``model.round_hook(site, t)``).

    >>> from hookgnn.groundtruth.bellman_ford import build_bellman_ford
    >>> model = build_bellman_ford(rounds=1)
    >>> edges = circuit_weights(model, 1, {"hook_edge_embed": {0}}, {"hook_src": {0}, "hook_message_pre": {0}})
    >>> sorted((e.name, e.src.feature, e.dst.feature) for e in edges)
    [('agg_e', 0, 0), ('agg_h', 0, 0)]
    """
    neurons = {h: set(f) for h, f in inputs.items()}
    for t in range(rounds):
        for site, feats in sites.items():
            neurons.setdefault(model.round_hook(site, t), set()).update(feats)
    widths = _widths(model)
    out = []
    for link in links_of(model, range(rounds)):
        for e in weight_edges(link, widths[link.src], widths[link.dst]):
            if e.src.feature in neurons.get(e.src.hook, ()) and e.dst.feature in neurons.get(e.dst.hook, ()):
                out.append(e)
    return frozenset(out)
