"""GAT: multi-head graph attention (Veličković et al. 2018) with edge features."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from hookgnn.hooks import HookPoint
from hookgnn.nn.message_passing import HookedMessagePassing
from hookgnn.nn.features import edge_features, with_inputs
from hookgnn.nn.projection import Block, SourceRows, concat_linear, gather_rows, source_block
from hookgnn.ops import scatter_softmax


class GAT(HookedMessagePassing):
    """Multi-head graph attention over incoming edges, with edge features and a skip.

    With :math:`z_v = [x_v, h_v]`, per head :math:`k` (width :math:`C`):

    .. math::

        s^k_{uv} = \\mathrm{LeakyReLU}_{0.2}\\big(a^{k}_{src} \\cdot W^k z_u
            + a^{k}_{dst} \\cdot W^k z_v + a^{k}_{e} \\cdot W^k_e e_{uv}\\big)

        \\alpha^k_{uv} = \\frac{\\exp s^k_{uv}}{\\sum_{w \\to v} \\exp s^k_{wv}} \\qquad
        m_{uv} = \\big\\Vert_k\\, \\alpha^k_{uv} W^k z_u \\qquad
        a_v = \\sum_{u \\to v} m_{uv}

        h'_v = \\mathrm{relu}(a_v + W_{skip} z_v + b)

    Heads are concatenated (:math:`C = d / H`) when ``concat`` is true; with
    ``concat=False`` every head has width :math:`d` and :math:`m_{uv}` is their mean.
    ``concat=None`` (default) concatenates when ``heads`` divides ``d_hidden`` and
    averages otherwise, so ``GAT(d)`` works for every ``d``. A node without incoming
    edges gets :math:`a_v = 0` (no self-loops are added: add them to the graph if you
    want them). Before the relu this is PyG's ``GATConv(2d, C, heads,
    add_self_loops=False, edge_dim=d, residual=True)`` applied to :math:`z`.

    Options for PyG's other configurations: ``use_inputs=False`` reads :math:`z_v = h_v`
    (width ``d_in``, default ``d_hidden``), ``residual=False`` replaces
    :math:`W_{skip} z_v + b` by :math:`b`, ``activation=False`` drops the final relu;
    ``GAT(d, heads, use_inputs=False, residual=False, activation=False)`` is
    ``GATConv(d, C, heads, add_self_loops=False, edge_dim=d)``.

    :math:`W z` is computed on nodes and gathered to the edges, the destination scores
    :math:`a_{dst} \\cdot W z_v` on nodes too (``message_from_nodes``; the same values).

    Attention couples the edges into a node: patching row :math:`e` of ``hook_src``
    changes :math:`m_{uv}` and, through the softmax, the weights of the other edges
    into :math:`v` (and nothing else).

    Hook points: ``hook_attention`` [E, heads] (:math:`\\alpha`, after the softmax; edge
    axis), ``hook_message`` [E, d], ``hook_aggregation`` [N, d], ``hook_update`` [N, d].

    >>> layer = GAT(8, heads=2)
    >>> h = torch.randn(3, 8); e = torch.randn(3, 8)
    >>> layer(h, torch.tensor([[0, 1, 2], [1, 2, 2]]), e, x=h).shape
    torch.Size([3, 8])
    """

    def __init__(self, d_hidden: int, heads: int = 4, concat: bool | None = None,
                 d_edge: int | None = None, negative_slope: float = 0.2, use_inputs: bool = True,
                 residual: bool = True, activation: bool = True, d_in: int | None = None) -> None:
        super().__init__(aggr="sum")
        if heads < 1:
            raise ValueError(f"heads must be >= 1, got {heads}")
        if concat is None:
            concat = d_hidden % heads == 0
        if concat and d_hidden % heads:
            raise ValueError(f"concat=True needs heads ({heads}) to divide d_hidden ({d_hidden}); use concat=False")
        self.d_hidden, self.heads, self.concat = d_hidden, heads, concat
        self.d_head = d_hidden // heads if concat else d_hidden
        self.d_edge = d_hidden if d_edge is None else d_edge
        self.negative_slope = negative_slope
        self.use_inputs, self.activation = use_inputs, activation
        self.d_in = (2 * d_hidden if use_inputs else d_hidden) if d_in is None else d_in
        self.lin = nn.Linear(self.d_in, heads * self.d_head, bias=False)
        self.lin_edge = nn.Linear(self.d_edge, heads * self.d_head, bias=False)
        self.att_src = nn.Parameter(torch.empty(heads, self.d_head))
        self.att_dst = nn.Parameter(torch.empty(heads, self.d_head))
        self.att_edge = nn.Parameter(torch.empty(heads, self.d_head))
        self.skip = nn.Linear(self.d_in, d_hidden) if residual else None
        self.bias = None if residual else nn.Parameter(torch.zeros(d_hidden))
        self.hook_attention = HookPoint("edge")
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in (self.lin, self.lin_edge, self.skip):
            if lin is not None:
                lin.reset_parameters()
        if self.bias is not None:
            nn.init.zeros_(self.bias)
        for att in (self.att_src, self.att_dst, self.att_edge):
            nn.init.xavier_uniform_(att)

    def message(
        self,
        h_src: Float[Tensor, "edge d_h"],
        h_dst: Float[Tensor, "edge d_h"],
        edge_attr: Float[Tensor, "edge d_edge"] | None,
        x_src: Float[Tensor, "edge d_h"] | None,
        x_dst: Float[Tensor, "edge d_h"] | None,
        edge_index: Int[Tensor, "2 edge"],
        num_nodes: int,
    ) -> Float[Tensor, "edge d"]:
        value_src = self.lin(self._z(x_src, h_src)).view(-1, self.heads, self.d_head)  # [edge, head, C]
        value_dst = self.lin(self._z(x_dst, h_dst)).view(-1, self.heads, self.d_head)
        value_edge = self.lin_edge(edge_features(edge_attr, h_src, self.d_edge)).view(-1, self.heads, self.d_head)
        logits = (value_src * self.att_src).sum(-1) + (value_dst * self.att_dst).sum(-1) + (value_edge * self.att_edge).sum(-1)
        logits = F.leaky_relu(logits, self.negative_slope)  # [edge, head]
        alpha = self.hook_attention(scatter_softmax(logits, edge_index[1], num_nodes))  # [edge, head]
        msg = alpha.unsqueeze(-1) * value_src  # [edge, head, C]
        return msg.flatten(1) if self.concat else msg.mean(1)

    def message_from_nodes(
        self,
        h: Float[Tensor, "node d_h"],
        h_src: SourceRows | None,
        edge_index: Int[Tensor, "2 edge"],
        edge_attr: Float[Tensor, "edge d_edge"] | None,
        x: Float[Tensor, "node d_h"] | None,
    ) -> Float[Tensor, "edge d"]:
        # message's values: W z_u projected on nodes then gathered (read through hook_src);
        # the scores a_dst . W z_v on nodes, a_edge . W_e e_uv as one product per head.
        src, dst = edge_index
        heads, c = self.heads, self.d_head
        blocks = [Block(x, src, self.d_in - h.shape[-1])] if self.use_inputs else []
        blocks.append(source_block(h, h_src, src))
        value_src = concat_linear(self.lin, blocks, src.shape[0]).view(-1, heads, c)  # [edge, head, C]
        score_dst = (self.lin(self._z(x, h)).view(-1, heads, c) * self.att_dst).sum(-1)  # [node, head]
        logits = (value_src * self.att_src).sum(-1) + gather_rows(score_dst, dst)
        if edge_attr is not None:
            att_edge = (self.lin_edge.weight.view(heads, c, -1) * self.att_edge.unsqueeze(-1)).sum(1)  # [head, d_edge]
            logits = logits + F.linear(edge_attr, att_edge)
        logits = F.leaky_relu(logits, self.negative_slope)  # [edge, head]
        alpha = self.hook_attention(scatter_softmax(logits, dst, h.shape[0]))  # [edge, head]
        msg = alpha.unsqueeze(-1) * value_src  # [edge, head, C]
        return msg.flatten(1) if self.concat else msg.mean(1)

    def _z(self, x: Tensor | None, h: Tensor) -> Tensor:
        return with_inputs(x, h) if self.use_inputs else h

    def update(
        self, aggr: Float[Tensor, "node d"], h: Float[Tensor, "node d_h"], x: Float[Tensor, "node d_h"] | None
    ) -> Float[Tensor, "node d"]:
        out = aggr + (self.skip(self._z(x, h)) if self.skip is not None else self.bias)
        return torch.relu(out) if self.activation else out
