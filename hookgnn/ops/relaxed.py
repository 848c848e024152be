"""Relaxed (expected) aggregations: the aggregation over a random edge set, exact at 0/1 gates.

Edge ``e`` is kept independently with probability :math:`g_e` (its gate); the expected
aggregation at node :math:`v` is

.. math::

    \\text{sum:}\\quad a_v = \\sum_{e \\to v} g_e m_e \\qquad
    \\text{mean:}\\quad a_v = \\frac{\\sum_{e \\to v} g_e m_e}{\\max(1, \\sum_{e \\to v} g_e)}

    \\text{max:}\\quad a_v = \\sum_{k} m_{(k)} \\, g_{(k)} \\prod_{j < k} (1 - g_{(j)})
    \\qquad (m_{(1)} \\ge m_{(2)} \\ge \\dots \\text{: the messages into } v
    \\text{ sorted, per feature}; \\text{ min: sorted upwards})

multilinear in the gates, so at 0/1 gates it is the aggregation of the kept edges (0 at a
node with none). The metamers' structure relaxation (:mod:`hookgnn.metamers.relax`) puts it
in place of every round's aggregation.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float, Int
from torch import Tensor

from hookgnn.ops.scatter import REDUCTIONS, Reduce, scatter_max


def relaxed_aggregate(
    msg: Float[Tensor, "edge *feat"], gate: Float[Tensor, " edge"], dst: Int[Tensor, " edge"],
    num_nodes: int, reduce: Reduce,
) -> Float[Tensor, "node *feat"]:
    """The expected aggregation of ``msg`` over a random edge set kept with probabilities ``gate``.

    See the module docstring for the formulas; at 0/1 gates it equals the aggregation of
    the kept edges (0 at a node with none).

    >>> m = torch.tensor([[3.0], [5.0], [1.0]]); dst = torch.tensor([0, 0, 0])
    >>> relaxed_aggregate(m, torch.tensor([1.0, 0.0, 1.0]), dst, 2, "max").flatten().tolist()
    [3.0, 0.0]
    >>> relaxed_aggregate(m, torch.tensor([0.5, 0.5, 0.0]), dst, 1, "max").flatten().tolist()
    [3.25]
    """
    if reduce not in REDUCTIONS:
        raise ValueError(f"unknown reduce {reduce!r}; expected one of {REDUCTIONS}")
    flat = msg.reshape(msg.shape[0], math.prod(msg.shape[1:]))
    dst = dst.long()
    if reduce in ("sum", "mean"):
        out = flat.new_zeros(num_nodes, flat.shape[1]).index_add(0, dst, flat * gate.unsqueeze(1))
        if reduce == "mean":
            out = out / gate.new_zeros(num_nodes).index_add(0, dst, gate).clamp(min=1).unsqueeze(1)
    elif bool(((gate == 0) | (gate == 1)).all()):
        out = _BinaryExtreme.apply(flat, gate, dst, num_nodes, reduce == "max")
    else:
        out = _expected_extreme(flat, gate, dst, num_nodes, reduce == "max")
    return out.reshape(num_nodes, *msg.shape[1:])


class _BinaryExtreme(torch.autograd.Function):
    """:func:`_expected_extreme` at 0/1 gates, without sorting.

    Forward: the max (min) over the edges whose gate is 1, 0 at a node without one.
    Backward (the multilinear extension's derivatives at 0/1 gates): the message
    gradient goes to each node's winning kept edge (lowest index among ties, the first
    in the sorted order); the gate gradient of edge ``e`` into ``v`` is the change of
    :math:`a_v` when ``e`` alone flips: for the winner :math:`a_v - a_v^{(2)}` (the runner-up
    among kept edges, or 0), for another kept edge 0, for a dropped edge
    :math:`\\max(a_v, m_e) - a_v` (:math:`m_e` if ``v`` keeps no edge), signs mirrored for min.
    """

    @staticmethod
    def forward(ctx, msg: Tensor, gate: Tensor, dst: Tensor, num_nodes: int, largest: bool):  # type: ignore[override]
        sign = 1.0 if largest else -1.0
        on = gate > 0.5
        vals = torch.where(on.unsqueeze(1), sign * msg, torch.full_like(msg, -math.inf))
        best, arg = scatter_max(vals, dst, num_nodes)  # -inf (arg of a dropped edge) where v keeps none
        kept = torch.isfinite(best)
        winner = kept[dst] & (arg[dst] == torch.arange(msg.shape[0], device=msg.device).unsqueeze(1))
        second, _ = scatter_max(torch.where(winner, torch.full_like(vals, -math.inf), vals), dst, num_nodes)
        a = torch.where(kept, best, torch.zeros_like(best))                       # sign * aggregation
        rest = torch.where(torch.isfinite(second), second, torch.zeros_like(second))
        av = a[dst]
        effect = torch.where(winner, av - rest[dst],                               # remove the winner
                             torch.where(on.unsqueeze(1), torch.zeros_like(av),     # another kept edge
                                         torch.where(kept[dst], (sign * msg - av).clamp(min=0), sign * msg)))
        ctx.save_for_backward(winner, effect, dst)
        ctx.sign = sign
        return sign * a

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):  # type: ignore[override]
        winner, effect, dst = ctx.saved_tensors
        g = grad_out[dst]                                                           # [E, D]
        grad_msg = torch.where(winner, g, torch.zeros_like(g))
        grad_gate = (g * effect).sum(1) * ctx.sign
        return grad_msg, grad_gate, None, None, None


def _expected_extreme(flat: Tensor, gate: Tensor, dst: Tensor, num_nodes: int, largest: bool) -> Tensor:
    num_edges, width = flat.shape
    if num_edges == 0:
        return flat.new_zeros(num_nodes, width)
    # Per column: edges grouped by destination, the best message first within a group.
    by_value = torch.argsort(flat.detach(), dim=0, descending=largest, stable=True)  # [E, D]
    order = by_value.gather(0, torch.argsort(dst[by_value], dim=0, stable=True))     # [E, D]
    dst_sorted = torch.sort(dst, stable=True).values                                  # [E]
    deg = torch.bincount(dst, minlength=num_nodes)
    rank = torch.arange(num_edges, device=dst.device) - (deg.cumsum(0) - deg)[dst_sorted]
    slots = (dst_sorted, rank)
    dense = flat.new_zeros(num_nodes, int(deg.max()), width)                          # [N, max deg, D]
    values = dense.index_put(slots, flat.gather(0, order))
    gates = dense.index_put(slots, gate[order])
    survive = torch.cumprod(1 - gates, dim=1)  # P(none of the first k is kept)
    before = torch.cat([torch.ones_like(survive[:, :1]), survive[:, :-1]], dim=1)
    return (values * gates * before).sum(1)
