"""PGN: the gated Pointer Graph Network processor of the CLRS benchmark."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from hookgnn.hooks import HookPoint
from hookgnn.nn.features import edge_features, endpoint_blocks, with_inputs
from hookgnn.nn.message_passing import HookedMessagePassing
from hookgnn.nn.chunking import mlp_over_blocks
from hookgnn.nn.mlp import HookedMLP
from hookgnn.nn.projection import SourceRows
from hookgnn.ops import Reduce

#: Initial bias of the gate's output layer: sigmoid(-3) ~ 0.05, so a freshly built gated
#: layer mostly keeps its old state (as in CLRS).
GATE_BIAS_INIT = -3.0


class PGN(HookedMessagePassing):
    """Pointer Graph Network with max aggregation and a learned update gate (CLRS-style).

    With :math:`z_v = [x_v, h_v]` (encoded inputs and hidden state):

    .. math::

        m_{uv} = \\mathrm{MLP}_m([z_u, z_v, e_{uv}]) \\qquad
        a_v = \\max_{u \\to v} m_{uv} \\quad (0 \\text{ if } v \\text{ has no in-edge})

        c_v = \\mathrm{relu}(O_1 z_v + O_2 a_v) \\qquad
        g_v = \\sigma(\\mathrm{MLP}_g([z_v, a_v])) \\qquad
        h'_v = g_v \\odot c_v + (1 - g_v) \\odot h_v

    With ``gated=False`` the update is :math:`h'_v = c_v`. The gate's output bias starts
    at -3 (:data:`GATE_BIAS_INIT`), so a new layer starts close to the identity on
    :math:`h`. Graph features are not used. ``x`` may be omitted (treated as zeros).
    The message MLP's first layer runs on nodes before the gather, as in
    :class:`~hookgnn.nn.mpnn.MPNN`.

    Hook points: ``hook_message`` [E, d], ``hook_aggregation`` [N, d],
    ``hook_candidate`` [N, d] (:math:`c`), ``hook_gate`` [N, d] (:math:`g`, after the
    sigmoid; only when gated), ``hook_update`` [N, d] (:math:`h'`), and the hidden
    neurons ``message_mlp.hook_pre/hook_post`` [E, d_mlp] and
    ``gate_mlp.hook_pre/hook_post`` [N, d_mlp].

    >>> layer = PGN(8)
    >>> h = torch.randn(3, 8); e = torch.randn(2, 8)
    >>> layer(h, torch.tensor([[0, 1], [1, 2]]), e, x=h).shape
    torch.Size([3, 8])
    """

    def __init__(self, d_hidden: int, d_mlp: int | None = None, d_edge: int | None = None,
                 gated: bool = True, aggr: Reduce = "max") -> None:
        super().__init__(aggr=aggr)
        d_mlp = d_mlp or d_hidden
        self.d_hidden = d_hidden
        self.d_edge = d_hidden if d_edge is None else d_edge
        self.gated = gated
        self.message_mlp = HookedMLP(4 * d_hidden + self.d_edge, d_mlp, d_hidden, axis="edge")
        self.o1 = nn.Linear(2 * d_hidden, d_hidden)
        self.o2 = nn.Linear(d_hidden, d_hidden)
        self.hook_candidate = HookPoint("node")
        self.gate_mlp = HookedMLP(3 * d_hidden, d_mlp, d_hidden, axis="node") if gated else None
        self.hook_gate = HookPoint("node") if gated else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.message_mlp.reset_parameters()
        self.o1.reset_parameters()
        self.o2.reset_parameters()
        if self.gate_mlp is not None:
            self.gate_mlp.reset_parameters()
            nn.init.constant_(self.gate_mlp.lin_out.bias, GATE_BIAS_INIT)

    def message(
        self,
        h_src: Float[Tensor, "edge d"],
        h_dst: Float[Tensor, "edge d"],
        edge_attr: Float[Tensor, "edge d_edge"] | None,
        x_src: Float[Tensor, "edge d"] | None,
        x_dst: Float[Tensor, "edge d"] | None,
    ) -> Float[Tensor, "edge d"]:
        z_src, z_dst = with_inputs(x_src, h_src), with_inputs(x_dst, h_dst)
        return self.message_mlp(torch.cat([z_src, z_dst, edge_features(edge_attr, h_src, self.d_edge)], dim=-1))

    def message_from_nodes(
        self,
        h: Float[Tensor, "node d"],
        h_src: SourceRows | None,
        edge_index: Int[Tensor, "2 edge"],
        edge_attr: Float[Tensor, "edge d_edge"] | None,
        x: Float[Tensor, "node d"] | None,
    ) -> Float[Tensor, "edge d"]:
        blocks = endpoint_blocks(h, h_src, x, edge_index, edge_attr, self.d_edge)
        return mlp_over_blocks(self.message_mlp, blocks, edge_index.shape[1])  # in edge chunks on huge graphs

    def update(
        self, aggr: Float[Tensor, "node d"], h: Float[Tensor, "node d"], x: Float[Tensor, "node d"] | None
    ) -> Float[Tensor, "node d"]:
        z = with_inputs(x, h)
        candidate = self.hook_candidate(torch.relu(self.o1(z) + self.o2(aggr)))  # [node, d]
        if self.gate_mlp is None or self.hook_gate is None:
            return candidate
        gate = self.hook_gate(torch.sigmoid(self.gate_mlp(torch.cat([z, aggr], dim=-1))))  # [node, d]
        return gate * candidate + (1 - gate) * h
