"""GCN: the graph convolutional network (Kipf and Welling 2017)."""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from hookgnn.nn.message_passing import HookedMessagePassing


class GCN(HookedMessagePassing):
    """Symmetrically normalised sum over neighbours and a self-loop.

    With :math:`\\bar E` the edges that are not self-loops and
    :math:`d_v = 1 + |\\{u \\to v \\in \\bar E\\}|`:

    .. math::

        m_{uv} = \\frac{[u \\ne v]\\, W h_u}{\\sqrt{d_u d_v}} \\qquad
        a_v = \\sum_{u \\to v} m_{uv} \\qquad
        h'_v = a_v + \\frac{W h_v}{d_v} + b

    This is PyG's ``GCNConv`` (its default ``normalize=True, add_self_loops=True``, no
    edge weights): it replaces the graph's self-loops by exactly one per node, so here a
    self-loop edge carries a zero message and every node's own term is in the update.
    With ``normalize=False`` (no self-loops): :math:`m_{uv} = W h_u`, :math:`h'_v = a_v + b`.
    Hook points: ``hook_src`` [E, d_in], ``hook_message`` / ``hook_aggregation``
    [E or N, d_out], ``hook_update`` [N, d_out].

    >>> GCN(4, 2)(torch.ones(3, 4), torch.tensor([[0, 1], [1, 2]])).shape
    torch.Size([3, 2])
    """

    def __init__(self, d_in: int, d_out: int | None = None, normalize: bool = True, bias: bool = True) -> None:
        super().__init__(aggr="sum")
        d_out = d_in if d_out is None else d_out
        self.normalize = normalize
        self.lin = nn.Linear(d_in, d_out, bias=False)
        self.bias = nn.Parameter(torch.zeros(d_out)) if bias else None
        self._deg: Tensor | None = None

    def forward(
        self,
        h: Float[Tensor, "node d"],
        edge_index: Int[Tensor, "2 edge"],
        edge_attr: Float[Tensor, "edge d_edge"] | None = None,
        x: Float[Tensor, "node d_x"] | None = None,
        graph_attr: Float[Tensor, "graph d_graph"] | None = None,
        batch: Int[Tensor, " node"] | None = None,
    ) -> Float[Tensor, "node d_out"]:
        """One round (the arguments of :meth:`HookedMessagePassing.forward`, so that the estimators can
        recompute it locally); the degrees of this graph are computed first (see the class doc)."""
        src, dst = edge_index
        keep = (src != dst).to(h.dtype)
        self._deg = 1.0 + torch.zeros(h.shape[0], dtype=h.dtype, device=h.device).index_add_(0, dst, keep)
        try:
            return super().forward(h, edge_index, edge_attr, x, graph_attr, batch)
        finally:
            self._deg = None

    def message(self, h_src: Float[Tensor, "edge d"], h_dst: Float[Tensor, "edge d"], edge_attr: Tensor | None,
                edge_index: Int[Tensor, "2 edge"]) -> Float[Tensor, "edge d_out"]:
        out = self.lin(h_src)
        if not self.normalize:
            return out
        assert self._deg is not None
        src, dst = edge_index
        scale = (src != dst).to(out.dtype) * (self._deg[src] * self._deg[dst]).rsqrt()
        return out * scale.unsqueeze(-1)

    def update(self, aggr: Float[Tensor, "node d_out"], h: Float[Tensor, "node d"]) -> Float[Tensor, "node d_out"]:
        out = aggr
        if self.normalize:
            assert self._deg is not None
            out = out + self.lin(h) / self._deg.unsqueeze(-1)
        return out if self.bias is None else out + self.bias
