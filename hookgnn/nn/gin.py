"""GIN: the graph isomorphism network (Xu et al. 2019)."""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from hookgnn.nn.message_passing import HookedMessagePassing
from hookgnn.nn.mlp import HookedMLP


class GIN(HookedMessagePassing):
    """A sum of neighbour states, added to the node's own, through an MLP.

    .. math::

        m_{uv} = h_u \\qquad a_v = \\sum_{u \\to v} m_{uv} \\qquad
        h'_v = \\mathrm{MLP}\\big((1 + \\epsilon)\\, h_v + a_v\\big)

    PyG's ``GINConv(MLP, eps, train_eps)``; :math:`\\epsilon` is learned with
    ``train_eps``. Hook points: ``hook_src`` / ``hook_message`` [E, d_in],
    ``hook_aggregation`` [N, d_in], the MLP's ``mlp.hook_pre/hook_post`` [N, d_mlp],
    ``hook_update`` [N, d_out].

    >>> GIN(4)(torch.ones(3, 4), torch.tensor([[0, 1], [1, 2]])).shape
    torch.Size([3, 4])
    """

    def __init__(self, d_in: int, d_mlp: int | None = None, d_out: int | None = None, eps: float = 0.0,
                 train_eps: bool = False, activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__(aggr="sum")
        self.d_in, self.initial_eps = d_in, eps
        self.mlp = HookedMLP(d_in, d_mlp or d_in, d_out or d_in, axis="node", activation=activation)
        if train_eps:
            self.eps = nn.Parameter(torch.empty(1))
        else:
            self.register_buffer("eps", torch.empty(1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.mlp.reset_parameters()
        with torch.no_grad():
            self.eps.fill_(self.initial_eps)

    def message(self, h_src: Float[Tensor, "edge d"], h_dst: Float[Tensor, "edge d"],
                edge_attr: Tensor | None) -> Float[Tensor, "edge d"]:
        return h_src

    def update(self, aggr: Float[Tensor, "node d"], h: Float[Tensor, "node d"]) -> Float[Tensor, "node d_out"]:
        return self.mlp((1 + self.eps) * h + aggr)
