"""A continuous relaxation of the edge set, exact on every valid graph.

The metamer's edges are chosen from a fixed set of *candidate* edges; candidate ``e``
carries a gate :math:`g_e \\in [0, 1]`. The model runs on the graph of all candidates,
and in every round the aggregation of the messages (``hook_aggregation``) is replaced,
through hooks, by the **expected aggregation over a random edge set** that keeps each
candidate independently with probability :math:`g_e` (:func:`hookgnn.ops.relaxed.relaxed_aggregate`):

.. math::

    \\text{sum:}\\quad a_v = \\sum_{e \\to v} g_e m_e

    \\text{max:}\\quad a_v = \\sum_{k} m_{(k)} \\, g_{(k)} \\prod_{j < k} (1 - g_{(j)})
    \\qquad (m_{(1)} \\ge m_{(2)} \\ge \\dots \\text{: the messages into } v
    \\text{ sorted, per feature})

    \\text{min:}\\quad \\text{the same with the messages sorted upwards}

    \\text{mean:}\\quad a_v = \\frac{\\sum_{e \\to v} g_e m_e}{\\max(1, \\sum_{e \\to v} g_e)}

The max formula is :math:`E[\\max]` with the empty set giving 0, hookgnn's value for a
node without incoming edges; it is multilinear in the gates, so **at 0/1 gates it is
exactly the aggregation of the graph of the edges whose gate is 1**, and its derivative
with respect to :math:`g_e` there is exactly the change of :math:`a_v` when edge ``e``
alone is added or removed (0 while a larger message of ``v`` is on, :math:`m_e - a_v`
or :math:`a_v - m_{next}` otherwise). Multiplying messages by their gate, which is
right for sum, is wrong for max and min: a gated message equal to 0 still competes
(and wins a min over positive messages), while a removed edge must not take part. The
mean relaxation is exact at 0/1 gates (not an expectation in between).

The gates are straight-through: the forward pass uses the hard gates
:math:`\\mathbb{1}[\\ell_e > 0]` (or the top ``num_edges`` logits), so every forward is
that of a valid graph, and the backward pass goes through :math:`\\sigma(\\ell_e/\\tau)`.

This is exact only when the edge set enters each round solely through the aggregation
of ``hook_message`` (MPNN, MinAgg, PGN, GINE). Attention (GAT: softmax over incoming
edges) and triplet messages read the edge set inside the message and are refused;
:func:`verify_relaxation` checks a model against plain forwards on the hard graphs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Union

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from hookgnn.hooks import HookedRootModule, HookPoint, HookSpec
from hookgnn.nn.message_passing import HookedMessagePassing
from hookgnn.ops import Reduce
from hookgnn.ops.relaxed import relaxed_aggregate

#: Start logits are +INIT_LOGIT for a start edge and -INIT_LOGIT otherwise; logits are
#: clipped to [-LOGIT_CLIP, LOGIT_CLIP] after each step so that every edge stays a few
#: steps from flipping.
INIT_LOGIT, LOGIT_CLIP = 1.0, 3.0


@dataclass(frozen=True, eq=False)
class EdgeSpace:
    """Which edge sets a metamer may have.

    Metamer graphs are simple (at most one edge per candidate pair); parallel edges
    of a start graph count once. (Called ``Structure`` in 0.1.)

    >>> EdgeSpace(num_edges=4, keep="self_loops", symmetric=True).num_edges
    4

    :param candidates: ``"complete"`` (every ordered pair ``(u, v)`` of the reference's nodes, self-loops
        included) or a ``[2, C]`` tensor of distinct local edges.
    :param num_edges: the metamer has exactly this many edges (kept ones included): the hard edge set is the
        top logits. ``None``: any number (logit > 0).
    :param keep: edges that are always present: ``"self_loops"`` (every candidate ``(i, i)``), a ``[2, K]``
        tensor of candidates, or ``None``.
    :param symmetric: undirected graphs: ``(u, v)`` and ``(v, u)`` share one logit.
    :param temperature: :math:`\\tau` of the straight-through sigmoid.
    """

    candidates: Union[Literal["complete"], Tensor] = "complete"
    num_edges: int | None = None
    keep: Union[Literal["self_loops"], Tensor, None] = None
    symmetric: bool = False
    temperature: float | int = 1.0

    def edges(self, n: int) -> tuple[Int[Tensor, "2 cand"], Bool[Tensor, " cand"]]:
        """The local candidate edges of an ``n``-node graph and which of them are kept.

        >>> cand, keep = EdgeSpace(keep="self_loops").edges(2)
        >>> cand.tolist(), keep.tolist()
        ([[0, 0, 1, 1], [0, 1, 0, 1]], [True, False, False, True])
        """
        if not self.temperature > 0:
            raise ValueError(f"EdgeSpace temperature must be > 0, got {self.temperature}")
        if isinstance(self.candidates, str):
            if self.candidates != "complete":
                raise ValueError(f"candidates must be 'complete' or a [2, C] tensor, got {self.candidates!r}")
            nodes = torch.arange(n)
            cand = torch.stack([nodes.repeat_interleave(n), nodes.repeat(n)])
        else:
            cand = _edge_tensor(self.candidates, n, "candidates")
        lookup = _lookup(cand, n, "candidates")
        keep = torch.zeros(cand.shape[1], dtype=torch.bool)
        if isinstance(self.keep, str):
            if self.keep != "self_loops":
                raise ValueError(f"keep must be 'self_loops', a [2, K] tensor or None, got {self.keep!r}")
            loops = lookup[torch.arange(n) * (n + 1)]
            if bool((loops < 0).any()):
                raise ValueError(f"keep='self_loops' but ({int((loops < 0).nonzero()[0, 0])}, same) is no candidate")
            keep[loops] = True
        elif self.keep is not None:
            kept = _edge_tensor(self.keep, n, "keep")
            ids = lookup[kept[0] * n + kept[1]]
            if bool((ids < 0).any()):
                i = int((ids < 0).nonzero()[0, 0])
                raise ValueError(f"kept edge ({int(kept[0, i])}, {int(kept[1, i])}) is not a candidate")
            keep[ids] = True
        if self.symmetric:
            rev = lookup[cand[1] * n + cand[0]]
            if bool((rev < 0).any()):
                i = int((rev < 0).nonzero()[0, 0])
                raise ValueError(f"symmetric=True but candidate ({int(cand[0, i])}, {int(cand[1, i])}) has no reverse")
            if bool((keep != keep[rev]).any()):
                raise ValueError("symmetric=True needs the kept edges to come in both directions")
        free = int((~keep).sum())
        if self.num_edges is not None:
            lo = int(keep.sum())
            if not lo <= self.num_edges <= lo + free:
                raise ValueError(f"num_edges={self.num_edges} is impossible: {lo} kept edges and "
                                 f"{free} free candidates")
            if self.symmetric and (bool((cand[0] == cand[1])[~keep].any()) or (self.num_edges - lo) % 2):
                raise ValueError("symmetric=True with num_edges needs free candidates without self-loops "
                                 "and an even number of free edges")
        return cand, keep


def _edge_tensor(edges: Tensor, n: int, what: str) -> Tensor:
    if not isinstance(edges, Tensor) or edges.dim() != 2 or edges.shape[0] != 2 or edges.is_floating_point():
        got = tuple(edges.shape) if isinstance(edges, Tensor) else type(edges).__name__
        raise ValueError(f"{what} must be an integer tensor [2, C], got {got}")
    edges = edges.long().cpu()
    if edges.numel() and (int(edges.min()) < 0 or int(edges.max()) >= n):
        raise ValueError(f"{what} has a node index outside [0, {n}) (edges are local to the reference)")
    return edges


def _lookup(cand: Tensor, n: int, what: str) -> Tensor:
    """``table[u * n + v]`` = candidate id of ``(u, v)``, -1 where none."""
    table = torch.full((n * n,), -1, dtype=torch.long)
    keys = cand[0] * n + cand[1]
    if keys.unique().numel() != keys.numel():
        raise ValueError(f"{what} contain a repeated edge; candidates must be distinct")
    table[keys] = torch.arange(cand.shape[1])
    return table


class EdgeGates:
    """Straight-through gates of the candidate edges of ``num`` metamers (logits ``[num, P]``,
    one column per free candidate, or per free pair with ``symmetric``).

    Set the start edge sets with :meth:`start_from` (``[num, C]`` masks) or
    :meth:`random_start` before optimising.
    """

    def __init__(self, structure: EdgeSpace, n: int, num: int) -> None:
        self.structure, self.n = structure, n
        self.cand, self.keep = structure.edges(n)
        self._table = _lookup(self.cand, n, "candidates")
        self.free = (~self.keep).nonzero().flatten()
        a, b = self.cand[:, self.free]
        key = torch.minimum(a, b) * n + torch.maximum(a, b) if structure.symmetric else a * n + b
        pairs, self.pair_of = key.unique(return_inverse=True)  # free candidate -> logit column
        self.num_pairs = pairs.numel()
        self.logits = torch.zeros(num, self.num_pairs, requires_grad=True)

    @property
    def num(self) -> int:
        return self.logits.shape[0]

    @property
    def free_per_metamer(self) -> int | None:
        """Logit columns that are on in every hard edge set (``None`` without ``num_edges``)."""
        if self.structure.num_edges is None:
            return None
        m = self.structure.num_edges - int(self.keep.sum())
        return m // 2 if self.structure.symmetric else m

    def mask_of(self, edge_index: Int[Tensor, "2 edge"], which: str) -> Bool[Tensor, " cand"]:
        """The candidates present in a local edge list, kept edges added; raises on an edge
        that is no candidate."""
        ids = self._table[edge_index[0].cpu() * self.n + edge_index[1].cpu()]
        if bool((ids < 0).any()):
            i = int((ids < 0).nonzero()[0, 0])
            raise ValueError(f"{which} has edge {i} ({int(edge_index[0, i])} -> {int(edge_index[1, i])}), "
                             "which is not a candidate of the structure")
        mask = torch.zeros(self.cand.shape[1], dtype=torch.bool)
        mask[ids] = True
        return mask | self.keep.cpu()

    def start_from(self, masks: Bool[Tensor, "num cand"]) -> None:
        """Start at the given edge sets (checked against ``symmetric`` and ``num_edges``)."""
        if masks.shape != (self.num, self.cand.shape[1]):
            raise ValueError(f"start masks must be [{self.num}, {self.cand.shape[1]}], got {tuple(masks.shape)}")
        masks = masks.to(self.keep.device) | self.keep
        on = masks[:, self.free].float()
        per_pair = on.new_zeros(self.num, self.num_pairs).index_add(1, self.pair_of, on)
        width = torch.bincount(self.pair_of, minlength=self.num_pairs)
        if bool(((per_pair > 0) & (per_pair < width)).any()):
            raise ValueError("symmetric=True but a start graph has an edge without its reverse")
        if self.structure.num_edges is not None:
            counts = masks.sum(1)
            if bool((counts != self.structure.num_edges).any()):
                j = int((counts != self.structure.num_edges).nonzero()[0, 0])
                raise ValueError(f"start graph {j} has {int(counts[j])} edges (kept ones included) but "
                                 f"num_edges={self.structure.num_edges}")
        with torch.no_grad():
            self.logits.copy_(INIT_LOGIT * (2 * (per_pair > 0).float() - 1))

    def random_start(self, density: float, generator: torch.Generator) -> None:
        """Random start edge sets: ``num_edges`` edges, else each free candidate (pair) on
        with probability ``density``."""
        u = torch.rand(self.num, self.num_pairs, generator=generator)
        m = self.free_per_metamer
        if m is None:
            on = (u < density).float()
        else:
            on = torch.zeros_like(u).scatter_(1, u.topk(m, dim=1).indices, 1.0)
        with torch.no_grad():
            self.logits.copy_(INIT_LOGIT * (2 * on - 1))

    def masks(self) -> Bool[Tensor, "num cand"]:
        """The hard edge sets: ``[num, C]`` masks over the candidates."""
        with torch.no_grad():
            return self._hard(self.logits).bool()

    def _hard(self, logits: Tensor) -> Tensor:
        m = self.free_per_metamer
        if m is None:
            on = (logits > 0).float()
        else:
            on = torch.zeros_like(logits).scatter_(1, logits.topk(m, dim=1).indices, 1.0)
        return self._expand(on)

    def _expand(self, per_pair: Tensor) -> Tensor:
        full = per_pair.new_zeros(self.num, self.cand.shape[1])
        full[:, self.keep] = 1.0
        full[:, self.free] = per_pair[:, self.pair_of]
        return full

    def gates(self) -> Float[Tensor, " num_cand"]:
        """Gates of every candidate of every metamer, ``[num * C]`` (graph-major): hard values,
        gradient through :math:`\\sigma(\\ell / \\tau)`."""
        soft = self._expand(torch.sigmoid(self.logits / self.structure.temperature))
        return (self._hard(self.logits.detach()) + (soft - soft.detach())).reshape(-1)  # exactly 0/1 forward

    def to(self, device: torch.device) -> EdgeGates:
        """Move the candidates and logits to ``device`` (in place; returns self)."""
        self.cand, self.keep, self.free, self.pair_of = (t.to(device) for t in (self.cand, self.keep, self.free,
                                                                                  self.pair_of))
        self.logits = self.logits.detach().to(device).requires_grad_()
        return self

    def project_(self) -> None:
        """Clip the logits to ``[-LOGIT_CLIP, LOGIT_CLIP]``."""
        with torch.no_grad():
            self.logits.clamp_(-LOGIT_CLIP, LOGIT_CLIP)


@dataclass(frozen=True)
class MessageSite:
    """One round's messages (an edge-axis hook) and the node-axis hook of their aggregation."""

    message: str
    aggregation: str
    reduce: Reduce


def find_sites(model: HookedRootModule) -> list[MessageSite]:
    """The message/aggregation hook pairs of every :class:`HookedMessagePassing` round.

    Raises if a layer reads the edge set outside its aggregation (its ``message`` takes
    ``edge_index``: attention, triplets) or overrides ``aggregate``.

    >>> from hookgnn import HookedGNN
    >>> find_sites(HookedGNN("minagg", 4, node_in=1, max_steps=2))[1]
    MessageSite(message='layers.1.hook_message', aggregation='layers.1.hook_aggregation', reduce='min')
    """
    sites = []
    for name, module in model.named_modules():
        if not isinstance(module, HookedMessagePassing):
            continue
        reads = {"edge_index", "num_nodes"} & set(module._message_args)
        if reads or type(module).aggregate is not HookedMessagePassing.aggregate:
            why = f"its message reads {sorted(reads)}" if reads else "it overrides aggregate"
            raise ValueError(f"structure relaxation cannot handle {name or 'the model'} ({type(module).__name__}): "
                             f"{why}, so the edge set enters beyond the aggregation of hook_message")
        prefix = f"{name}." if name else ""
        sites.append(MessageSite(f"{prefix}hook_message", f"{prefix}hook_aggregation", module.aggr))
    if not sites:
        raise ValueError("the model has no HookedMessagePassing layer; pass sites=[MessageSite(...)] for the "
                         "message and aggregation hooks of each round")
    return sites


def relaxation_hooks(
    sites: Sequence[MessageSite], gate: Float[Tensor, " edge"], dst: Int[Tensor, " edge"], num_nodes: int
) -> list[HookSpec]:
    """Forward hooks that replace each site's aggregation by :func:`relaxed_aggregate`."""
    by_message = {s.message: s for s in sites}
    by_aggregation = {s.aggregation: s for s in sites}
    pending: dict[str, Tensor] = {}

    def on_message(t: Tensor, hook: HookPoint) -> None:
        if t.shape[0] != gate.shape[0]:
            raise ValueError(f"{hook.name} has {t.shape[0]} rows but there are {gate.shape[0]} candidate edges")
        pending[by_message[hook.name].aggregation] = t

    def on_aggregation(t: Tensor, hook: HookPoint) -> Tensor:
        if hook.name not in pending:
            raise ValueError(f"{hook.name} fired before its messages ({by_aggregation[hook.name].message})")
        return relaxed_aggregate(pending.pop(hook.name), gate, dst, num_nodes, by_aggregation[hook.name].reduce)

    return [(s.message, on_message) for s in sites] + [(s.aggregation, on_aggregation) for s in sites]
