"""MLPConv: message and update MLPs with their own input and output widths."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor

from hookgnn.hooks import HookPoint
from hookgnn.nn.features import edge_features
from hookgnn.nn.message_passing import HookedMessagePassing
from hookgnn.nn.mlp import HookedMLP
from hookgnn.nn.wiring import InputBlock, Link, column_links, in_order
from hookgnn.ops import Reduce


class MLPConv(HookedMessagePassing):
    """A round whose message and update are two-layer MLPs, from width ``d_in`` to ``d_out``.

    .. math::

        m_{uv} = \\mathrm{relu}\\big(\\mathrm{MLP}_m([h_u, e_{uv}])\\big) \\qquad
        a_v = \\bigoplus_{u \\to v} m_{uv} \\qquad
        h'_v = \\mathrm{MLP}_u([a_v, h_v])

    with :math:`\\oplus` = ``aggr`` (``"min"`` by default: the published MINAR / Nerem et
    al. Bellman-Ford network is two such rounds, widths 1 -> 8 -> 1, MLPs 64 wide) and
    the outer relu dropped with ``message_relu=False``. Hook points: ``hook_src``
    [E, d_in], ``message_mlp.hook_pre/hook_post`` [E, d_mlp], ``hook_message_pre`` and
    ``hook_message`` [E, d_out], ``hook_aggregation`` [N, d_out],
    ``update_mlp.hook_pre/hook_post`` [N, d_mlp], ``hook_update`` [N, d_out]. Its
    neuron-level wiring is :meth:`links`.

    >>> layer = MLPConv(1, 8, d_edge=1)
    >>> layer(torch.zeros(3, 1), torch.tensor([[0, 1], [1, 2]]), torch.ones(2, 1)).shape
    torch.Size([3, 8])
    """

    def __init__(self, d_in: int, d_out: int | None = None, d_edge: int | None = None, d_mlp: int = 64,
                 aggr: Reduce = "min", message_relu: bool = True) -> None:
        super().__init__(aggr=aggr)
        self.d_in, self.d_out = d_in, d_in if d_out is None else d_out
        self.d_edge = d_in if d_edge is None else d_edge
        self.message_relu = message_relu
        self.message_mlp = HookedMLP(d_in + self.d_edge, d_mlp, self.d_out, axis="edge")
        self.update_mlp = HookedMLP(self.d_out + d_in, d_mlp, self.d_out, axis="node")
        self.hook_message_pre = HookPoint("edge")

    def message(
        self, h_src: Float[Tensor, "edge d_in"], h_dst: Float[Tensor, "edge d_in"],
        edge_attr: Float[Tensor, "edge d_edge"] | None,
    ) -> Float[Tensor, "edge d_out"]:
        e = edge_features(edge_attr, h_src, self.d_edge)
        z = torch.cat(in_order(self.message_blocks(), m_h=h_src, m_e=e), dim=-1)  # [edge, d_in + d_edge]
        pre = self.hook_message_pre(self.message_mlp(z))  # [edge, d_out]
        return torch.relu(pre) if self.message_relu else pre

    def update(self, aggr: Float[Tensor, "node d_out"], h: Float[Tensor, "node d_in"]) -> Float[Tensor, "node d_out"]:
        return self.update_mlp(torch.cat(in_order(self.update_blocks(), u_a=aggr, u_h=h), dim=-1))

    def message_blocks(self) -> list[InputBlock]:
        """:math:`[h_u, e_{uv}]`, the input of :math:`\\mathrm{MLP}_m` block by block, in order:
        (link name, what it reads, how edge ``u -> v`` reads it, width)."""
        return [("m_h", "hook_src", "same", self.d_in), ("m_e", "{e}", "same", self.d_edge)]

    def update_blocks(self) -> list[InputBlock]:
        """:math:`[a_v, h_v]`, the input of :math:`\\mathrm{MLP}_u` block by block, in order."""
        return [("u_a", "hook_aggregation", "same", self.d_out), ("u_h", "{prev}", "same", self.d_in)]

    def links(self) -> list[Link]:
        """The neuron-level wiring of one round (:class:`~hookgnn.nn.wiring.Link`)."""
        return [
            Link("src", "{prev}", "hook_src", "src"),
            *column_links("message_mlp.hook_pre", lambda m: m.message_mlp.lin_in.weight, self.message_blocks()),
            Link("m_relu", "message_mlp.hook_pre", "message_mlp.hook_post", "same", None, "relu"),
            Link("m_out", "message_mlp.hook_post", "hook_message_pre", "same", lambda m: m.message_mlp.lin_out.weight),
            Link("relu", "hook_message_pre", "hook_message", "same", None, "relu" if self.message_relu else "identity"),
            Link("aggr", "hook_message", "hook_aggregation", "scatter"),
            *column_links("update_mlp.hook_pre", lambda m: m.update_mlp.lin_in.weight, self.update_blocks()),
            Link("u_relu", "update_mlp.hook_pre", "update_mlp.hook_post", "same", None, "relu"),
            Link("u_out", "update_mlp.hook_post", "hook_update", "same", lambda m: m.update_mlp.lin_out.weight),
        ]
