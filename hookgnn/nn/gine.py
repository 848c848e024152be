"""GINE: the graph isomorphism network with edge features (Hu et al. 2020)."""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from hookgnn.nn.features import edge_features, with_inputs
from hookgnn.nn.message_passing import HookedMessagePassing
from hookgnn.nn.mlp import HookedMLP
from hookgnn.nn.projection import SourceRows, gather_rows


class GINE(HookedMessagePassing):
    """GIN with edge features: a sum of rectified neighbour-plus-edge terms, then an MLP.

    With :math:`z_v = [x_v, h_v]` when ``use_inputs`` (default) and :math:`z_v = h_v`
    otherwise (the plain GINE of Hu et al.):

    .. math::

        m_{uv} = \\mathrm{relu}(z_u + W_e e_{uv} + b_e) \\qquad
        a_v = \\sum_{u \\to v} m_{uv} \\qquad
        h'_v = \\mathrm{MLP}\\big((1 + \\epsilon)\\, z_v + a_v\\big)

    :math:`\\epsilon` starts at ``eps`` and is learned when ``train_eps``. The output is
    the MLP's (no final activation), as in Hu et al. Re-reading the encoded inputs
    :math:`x` every round (``use_inputs``) follows the CLRS processors; this is then
    exactly PyG's ``GINEConv(MLP, edge_dim=d)`` applied to :math:`z` (width
    :math:`2d`). ``x`` may be omitted (treated as zeros).

    Hook points: ``hook_message`` [E, d_in], ``hook_aggregation`` [N, d_in] (with
    :math:`d_{in} = 2d` when ``use_inputs``, else :math:`d`), ``hook_update`` [N, d], and
    the MLP's hidden neurons ``mlp.hook_pre/hook_post`` [N, d_mlp].

    >>> layer = GINE(8)
    >>> h = torch.randn(3, 8); e = torch.randn(2, 8)
    >>> layer(h, torch.tensor([[0, 1], [1, 2]]), e, x=h).shape
    torch.Size([3, 8])
    """

    def __init__(self, d_hidden: int, d_mlp: int | None = None, d_edge: int | None = None,
                 eps: float = 0.0, train_eps: bool = True, use_inputs: bool = True) -> None:
        super().__init__(aggr="sum")
        self.d_hidden, self.use_inputs, self.initial_eps = d_hidden, use_inputs, eps
        self.d_in = 2 * d_hidden if use_inputs else d_hidden
        self.d_edge = d_hidden if d_edge is None else d_edge
        self.lin_edge = nn.Linear(self.d_edge, self.d_in)
        self.mlp = HookedMLP(self.d_in, d_mlp or d_hidden, d_hidden, axis="node")
        if train_eps:
            self.eps = nn.Parameter(torch.empty(1))
        else:
            self.register_buffer("eps", torch.empty(1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.lin_edge.reset_parameters()
        self.mlp.reset_parameters()
        with torch.no_grad():
            self.eps.fill_(self.initial_eps)

    def _z(self, x: Tensor | None, h: Tensor) -> Tensor:
        return with_inputs(x, h) if self.use_inputs else h

    def message(
        self,
        h_src: Float[Tensor, "edge d"],
        h_dst: Float[Tensor, "edge d"],
        edge_attr: Float[Tensor, "edge d_edge"] | None,
        x_src: Float[Tensor, "edge d"] | None,
    ) -> Float[Tensor, "edge d_in"]:
        return torch.relu(self._z(x_src, h_src) + self.lin_edge(edge_features(edge_attr, h_src, self.d_edge)))

    def message_from_nodes(
        self,
        h: Float[Tensor, "node d"],
        h_src: SourceRows | None,
        edge_index: Int[Tensor, "2 edge"],
        edge_attr: Float[Tensor, "edge d_edge"] | None,
        x: Float[Tensor, "node d"] | None,
    ) -> Float[Tensor, "edge d_in"]:
        src = edge_index[0]
        if h_src is None:  # one gather of z = [x, h], built on the nodes
            z_src = gather_rows(self._z(x, h), src)
        else:
            z_src = self._z(None if x is None else gather_rows(x, src), h_src.value)
        e = self.lin_edge(edge_features(edge_attr, z_src, self.d_edge))
        return torch.relu(e.add_(z_src))

    def update(
        self, aggr: Float[Tensor, "node d_in"], h: Float[Tensor, "node d"], x: Float[Tensor, "node d"] | None
    ) -> Float[Tensor, "node d"]:
        return self.mlp((1 + self.eps) * self._z(x, h) + aggr)
