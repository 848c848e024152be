"""MinAgg: the min-aggregation Bellman-Ford network of MINAR / Nerem et al."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from hookgnn.hooks import HookPoint
from hookgnn.nn.message_passing import HookedMessagePassing
from hookgnn.nn.projection import Block, SourceRows, concat_linear, source_block
from hookgnn.nn.wiring import InputBlock, Link, column_links, in_order


class MinAgg(HookedMessagePassing):
    """A one-layer-per-step network that can align exactly with Bellman-Ford.

    .. math::

        m_{uv} = \\mathrm{relu}(W_{agg}[h_u, e_{uv}] + b_{agg}) \\qquad
        a_v = \\min_{u \\to v} m_{uv} \\qquad
        h'_v = W_{up}[a_v, h_v] + b_{up}

    With a scalar state :math:`h_v = d_v`, :math:`W_{agg} = [1, 1]`, :math:`W_{up} =
    [1, 0]` and zero biases one round is one Bellman-Ford relaxation
    :math:`d'_v = \\min_{u \\to v}(d_u + w_{uv})` (self-loops of weight 0 keep
    :math:`d_v`). Hook points: ``hook_message_pre`` (before the relu, edge axis),
    ``hook_message``, ``hook_aggregation``, ``hook_update``. :math:`W_{agg}` is applied to
    the states on nodes before they are gathered to the edges (the same values). Its
    neuron-level wiring is :meth:`links`.

    >>> layer = MinAgg(4, d_edge=1)
    >>> layer(torch.zeros(3, 4), torch.tensor([[0, 1], [1, 2]]), torch.ones(2, 1)).shape
    torch.Size([3, 4])
    """

    def __init__(self, d_hidden: int, d_edge: int | None = None) -> None:
        super().__init__(aggr="min")
        self.d_edge = d_hidden if d_edge is None else d_edge
        self.agg = nn.Linear(d_hidden + self.d_edge, d_hidden)
        self.up = nn.Linear(2 * d_hidden, d_hidden)
        self.hook_message_pre = HookPoint("edge")

    def agg_blocks(self) -> list[InputBlock]:
        """:math:`[h_u, e_{uv}]`, the input of :math:`W_{agg}` block by block, in order:
        (link name, what it reads, how edge ``u -> v`` reads it, width)."""
        return [("agg_h", "hook_src", "same", self.agg.out_features), ("agg_e", "{e}", "same", self.d_edge)]

    def up_blocks(self) -> list[InputBlock]:
        """:math:`[a_v, h_v]`, the input of :math:`W_{up}` block by block, in order."""
        d = self.agg.out_features
        return [("up_a", "hook_aggregation", "same", d), ("up_h", "{prev}", "same", d)]

    def links(self) -> list[Link]:
        """The neuron-level wiring of one round (:class:`~hookgnn.nn.wiring.Link`), from
        :meth:`agg_blocks` and :meth:`up_blocks`."""
        return [
            Link("src", "{prev}", "hook_src", "src"),
            *column_links("hook_message_pre", lambda m: m.agg.weight, self.agg_blocks()),
            Link("relu", "hook_message_pre", "hook_message", "same", None, "relu"),
            Link("min", "hook_message", "hook_aggregation", "scatter"),
            *column_links("hook_update", lambda m: m.up.weight, self.up_blocks()),
        ]

    def message(
        self, h_src: Float[Tensor, "edge d"], h_dst: Float[Tensor, "edge d"], edge_attr: Float[Tensor, "edge d_edge"] | None
    ) -> Float[Tensor, "edge d"]:
        if edge_attr is None:
            edge_attr = h_src.new_zeros(h_src.shape[0], self.d_edge)
        z = torch.cat(in_order(self.agg_blocks(), agg_h=h_src, agg_e=edge_attr), dim=-1)  # [edge, d + d_edge]
        pre = self.hook_message_pre(self.agg(z))  # [edge, d]
        return torch.relu(pre)

    def message_from_nodes(
        self,
        h: Float[Tensor, "node d"],
        h_src: SourceRows | None,
        edge_index: Int[Tensor, "2 edge"],
        edge_attr: Float[Tensor, "edge d_edge"] | None,
        x: Tensor | None,
    ) -> Float[Tensor, "edge d"]:
        blocks = in_order(self.agg_blocks(), agg_h=source_block(h, h_src, edge_index[0]),
                          agg_e=Block(edge_attr, None, self.d_edge))
        pre = concat_linear(self.agg, blocks, edge_index.shape[1])
        return torch.relu(self.hook_message_pre(pre))  # [edge, d]

    def update(self, aggr: Float[Tensor, "node d"], h: Float[Tensor, "node d"]) -> Float[Tensor, "node d"]:
        return self.up(torch.cat(in_order(self.up_blocks(), up_a=aggr, up_h=h), dim=-1))
