"""MPNN with max aggregation, as the CLRS baseline processor."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor

from hookgnn.hooks import HookPoint
from hookgnn.nn.features import edge_features
from hookgnn.nn.message_passing import HookedMessagePassing
from hookgnn.nn.chunking import mlp_over_blocks
from hookgnn.nn.mlp import HookedMLP
from hookgnn.nn.projection import Block, SourceRows, source_block
from hookgnn.nn.wiring import InputBlock, Link, column_links, in_order
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
    the same values, without the ``[E, 5d]`` concatenation. The order of both
    concatenations is written once (:meth:`message_blocks`, :meth:`update_blocks`), and
    read by the forward and by the neuron-level wiring (:meth:`links`).

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

    def message_blocks(self) -> list[InputBlock]:
        """:math:`[x_u, h_u, x_v, h_v, e_{uv}]`, the input of :math:`\\mathrm{MLP}_m` block by
        block, in order: (link name, what it reads, how edge ``u -> v`` reads it, width)."""
        d = self.message_mlp.lin_out.out_features
        return [("m_x_src", "{x}", "src", d), ("m_h_src", "hook_src", "same", d), ("m_x_dst", "{x}", "dst", d),
                ("m_h_dst", "{prev}", "dst", d), ("m_e", "{e}", "same", d)]

    def update_blocks(self) -> list[InputBlock]:
        """:math:`[x_v, h_v, a_v]`, the input of :math:`\\mathrm{MLP}_u` block by block, in order."""
        d = self.update_mlp.lin_out.out_features
        return [("u_x", "{x}", "same", d), ("u_h", "{prev}", "same", d), ("u_a", "hook_aggregation", "same", d)]

    def links(self) -> list[Link]:
        """The neuron-level wiring of one round (:class:`~hookgnn.nn.wiring.Link`), the
        columns of the two MLPs' first layers from :meth:`message_blocks` and :meth:`update_blocks`."""
        return [
            Link("src", "{prev}", "hook_src", "src"),
            *column_links("message_mlp.hook_pre", lambda m: m.message_mlp.lin_in.weight, self.message_blocks()),
            Link("m_relu", "message_mlp.hook_pre", "message_mlp.hook_post", "same", None, "relu"),
            Link("m_out", "message_mlp.hook_post", "hook_message", "same", lambda m: m.message_mlp.lin_out.weight),
            Link("aggr", "hook_message", "hook_aggregation", "scatter"),
            *column_links("update_mlp.hook_pre", lambda m: m.update_mlp.lin_in.weight, self.update_blocks()),
            Link("u_relu", "update_mlp.hook_pre", "update_mlp.hook_post", "same", None, "relu"),
            Link("u_out", "update_mlp.hook_post", "hook_update_pre", "same", lambda m: m.update_mlp.lin_out.weight),
            Link("u_relu_out", "hook_update_pre", "hook_update", "same", None, "relu"),
        ]

    def message(
        self,
        h_src: Float[Tensor, "edge d"],
        h_dst: Float[Tensor, "edge d"],
        edge_attr: Float[Tensor, "edge d"] | None,
        x_src: Float[Tensor, "edge d"],
        x_dst: Float[Tensor, "edge d"],
    ) -> Float[Tensor, "edge d"]:
        e = edge_features(edge_attr, h_src, h_src.shape[-1])
        z = in_order(self.message_blocks(), m_x_src=x_src, m_h_src=h_src, m_x_dst=x_dst, m_h_dst=h_dst, m_e=e)
        return self.message_mlp(torch.cat(z, dim=-1))

    def message_from_nodes(
        self,
        h: Float[Tensor, "node d"],
        h_src: SourceRows | None,
        edge_index: Int[Tensor, "2 edge"],
        edge_attr: Float[Tensor, "edge d"] | None,
        x: Float[Tensor, "node d"] | None,
    ) -> Float[Tensor, "edge d"]:
        src, dst = edge_index
        d = h.shape[-1]
        blocks = in_order(self.message_blocks(), m_x_src=Block(x, src, d), m_h_src=source_block(h, h_src, src),
                          m_x_dst=Block(x, dst, d), m_h_dst=Block(h, dst, d), m_e=Block(edge_attr, None, d))
        return mlp_over_blocks(self.message_mlp, blocks, edge_index.shape[1])  # in edge chunks on huge graphs

    def update(self, aggr: Float[Tensor, "node d"], h: Float[Tensor, "node d"], x: Float[Tensor, "node d"]) -> Float[Tensor, "node d"]:
        z = torch.cat(in_order(self.update_blocks(), u_x=x, u_h=h, u_a=aggr), dim=-1)
        pre = self.hook_update_pre(self.update_mlp(z))  # [node, d]
        return torch.relu(pre)
