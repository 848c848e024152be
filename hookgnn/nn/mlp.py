"""HookedMLP: a one-hidden-layer MLP whose hidden neurons carry hook points."""

from __future__ import annotations

from jaxtyping import Float
from torch import Tensor, nn

from hookgnn.hooks import Axis, HookPoint
from hookgnn.points import RowSpan


class HookedMLP(nn.Module):
    """:math:`y = W_{out}\\,\\sigma(W_{in} x + b_{in}) + b_{out}` with hooks on the hidden layer.

    ``hook_pre`` sees :math:`W_{in} x + b_{in}` and ``hook_post`` sees
    :math:`\\sigma(\\cdot)`, both ``[rows, d_hidden]``; ``axis`` names what the rows are
    (edges for a message MLP, nodes for an update MLP), so neuron-level analysis sees
    every hidden neuron of every edge or node.

    >>> import torch
    >>> mlp = HookedMLP(4, 8, 2, axis="edge")
    >>> mlp(torch.zeros(3, 4)).shape
    torch.Size([3, 2])
    """

    def __init__(self, d_in: int, d_hidden: int, d_out: int, axis: Axis, activation: type[nn.Module] = nn.ReLU) -> None:
        super().__init__()
        self.lin_in = nn.Linear(d_in, d_hidden)
        self.act = activation()
        self.lin_out = nn.Linear(d_hidden, d_out)
        self.hook_pre = HookPoint(axis)
        self.hook_post = HookPoint(axis)

    def forward(self, x: Float[Tensor, "row d_in"]) -> Float[Tensor, "row d_out"]:
        return self.from_pre(self.lin_in(x))

    def from_pre(self, pre: Float[Tensor, "row d_hidden"], span: RowSpan | None = None) -> Float[Tensor, "row d_out"]:
        """The MLP after its first layer: from :math:`W_{in} x + b_{in}`, computed by the
        caller (e.g. projected on nodes, :mod:`hookgnn.nn.projection`), hooks included.

        >>> import torch
        >>> mlp = HookedMLP(4, 8, 2, axis="edge"); x = torch.randn(3, 4)
        >>> torch.equal(mlp.from_pre(mlp.lin_in(x)), mlp(x))
        True

        :param pre: the first layer's output, ``[rows, d_hidden]``.
        :param span: ``pre`` is rows ``span.start:span.stop`` of the layer's rows (edge chunks,
            :mod:`hookgnn.nn.chunking`), passed to the hidden hook points
            (:meth:`~hookgnn.hooks.HookPoint.forward`); ``None``: all rows.
        """
        pre = self.hook_pre(pre, span)  # [row, d_hidden]
        post = self.hook_post(self.act(pre), span)  # [row, d_hidden]
        return self.lin_out(post)

    def reset_parameters(self) -> None:
        self.lin_in.reset_parameters()
        self.lin_out.reset_parameters()
