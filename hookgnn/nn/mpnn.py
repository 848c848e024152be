"""MPNN with max aggregation, as the CLRS baseline processor."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from hookgnn.hooks import HookPoint
from hookgnn.nn.features import edge_features, endpoint_blocks
from hookgnn.nn.message_passing import HookedMessagePassing
from hookgnn.nn.mlp import HookedMLP
from hookgnn.nn.projection import SourceRows, concat_linear
from hookgnn.ops import Reduce


class MPNN(HookedMessagePassing):
    """Message passing with an MLP message and a max (by default) aggregation.

    With :math:`z_v = [x_v, h_v]` (encoded inputs and hidden state):

    .. math::

        m_{uv} = \\mathrm{MLP}_m([z_u, z_v, e_{uv}]) \\qquad
        a_v = \\max_{u \\to v} m_{uv} \\qquad
        h'_v = \\mathrm{relu}(\\mathrm{MLP}_u([z_v, a_v]))

    Hook points: ``hook_message`` [E, d], ``hook_aggregation`` [N, d], ``hook_update``
    [N, d] and its pre-activation ``hook_update_pre`` [N, d] (:math:`\\mathrm{MLP}_u` is
    followed by a relu), and the hidden neurons ``message_mlp.hook_pre/hook_post``
    [E, d_mlp] and ``update_mlp.hook_pre/hook_post`` [N, d_mlp].

    The first layer of :math:`\\mathrm{MLP}_m` is applied to the nodes' blocks before they
    are gathered to the edges (``message_from_nodes``, :mod:`hookgnn.nn.projection`):
    the same values, without the ``[E, 5d]`` concatenation.

    >>> layer = MPNN(8)
    >>> h = torch.randn(3, 8); e = torch.randn(2, 8)
    >>> layer(h, torch.tensor([[0, 1], [1, 2]]), e, x=h).shape
    torch.Size([3, 8])
    """

    def __init__(self, d_hidden: int, d_mlp: int | None = None, aggr: Reduce = "max") -> None:
        super().__init__(aggr=aggr)
        d_mlp = d_mlp or d_hidden
        self.message_mlp = HookedMLP(5 * d_hidden, d_mlp, d_hidden, axis="edge")
        self.update_mlp = HookedMLP(3 * d_hidden, d_mlp, d_hidden, axis="node")
        self.hook_update_pre = HookPoint("node")

    def message(
        self,
        h_src: Float[Tensor, "edge d"],
        h_dst: Float[Tensor, "edge d"],
        edge_attr: Float[Tensor, "edge d"] | None,
        x_src: Float[Tensor, "edge d"],
        x_dst: Float[Tensor, "edge d"],
    ) -> Float[Tensor, "edge d"]:
        return self.message_mlp(torch.cat([x_src, h_src, x_dst, h_dst, edge_features(edge_attr, h_src, h_src.shape[-1])], dim=-1))

    def message_from_nodes(
        self,
        h: Float[Tensor, "node d"],
        h_src: SourceRows | None,
        edge_index: Int[Tensor, "2 edge"],
        edge_attr: Float[Tensor, "edge d"] | None,
        x: Float[Tensor, "node d"] | None,
    ) -> Float[Tensor, "edge d"]:
        blocks = endpoint_blocks(h, h_src, x, edge_index, edge_attr, h.shape[-1])
        return self.message_mlp.from_pre(concat_linear(self.message_mlp.lin_in, blocks, edge_index.shape[1]))

    def update(self, aggr: Float[Tensor, "node d"], h: Float[Tensor, "node d"], x: Float[Tensor, "node d"]) -> Float[Tensor, "node d"]:
        pre = self.hook_update_pre(self.update_mlp(torch.cat([x, h, aggr], dim=-1)))  # [node, d]
        return torch.relu(pre)

