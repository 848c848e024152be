"""SAGE: GraphSAGE (Hamilton et al. 2017) with a chosen neighbour aggregation."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from hookgnn.nn.message_passing import HookedMessagePassing
from hookgnn.ops import Reduce


class SAGE(HookedMessagePassing):
    """Aggregated neighbours and the node itself, each through its own linear map.

    .. math::

        m_{uv} = h_u \\qquad a_v = \\bigoplus_{u \\to v} m_{uv} \\qquad
        h'_v = W_l a_v + b + W_r h_v

    (:math:`\\oplus` = ``aggr``, ``"mean"`` by default; no :math:`W_r` term with
    ``root_weight=False``; :math:`h'_v / \\lVert h'_v \\rVert_2` with ``normalize``): PyG's
    ``SAGEConv`` without ``project``. Hook points: ``hook_src`` / ``hook_message`` [E, d_in],
    ``hook_aggregation`` [N, d_in], ``hook_update`` [N, d_out].

    >>> SAGE(4, 2)(torch.ones(3, 4), torch.tensor([[0, 1], [1, 2]])).shape
    torch.Size([3, 2])
    """

    def __init__(self, d_in: int, d_out: int | None = None, aggr: Reduce = "mean", root_weight: bool = True,
                 normalize: bool = False, bias: bool = True) -> None:
        super().__init__(aggr=aggr)
        d_out = d_in if d_out is None else d_out
        self.normalize = normalize
        self.lin_l = nn.Linear(d_in, d_out, bias=bias)
        self.lin_r = nn.Linear(d_in, d_out, bias=False) if root_weight else None

    def message(self, h_src: Float[Tensor, "edge d"], h_dst: Float[Tensor, "edge d"],
                edge_attr: Tensor | None) -> Float[Tensor, "edge d"]:
        return h_src

    def update(self, aggr: Float[Tensor, "node d"], h: Float[Tensor, "node d"]) -> Float[Tensor, "node d_out"]:
        out = self.lin_l(aggr)
        if self.lin_r is not None:
            out = out + self.lin_r(h)
        return F.normalize(out, p=2.0, dim=-1) if self.normalize else out
