"""Plain-PyTorch scatter max/min with the winning edge: the reference every backend matches.

For ``src`` ``[E, C]`` and ``index`` ``[E]``:

.. math::

    \\mathrm{out}_{v c} = \\max_{e : \\mathrm{index}_e = v} \\mathrm{src}_{e c}, \\qquad
    \\mathrm{arg}_{v c} = \\min \\{ e : \\mathrm{index}_e = v,\\ \\mathrm{src}_{e c} =
    \\mathrm{out}_{v c} \\}

with ``out = 0`` and ``arg = -1`` for a node without edges. NaN counts as the extreme
(as in :func:`torch.amax`): a node with a NaN edge gets NaN, won by its lowest NaN edge.
The backward sends ``grad_out[v, c]`` to edge ``arg[v, c]`` only (:func:`winner_gradient`).
"""

from __future__ import annotations

import torch
from jaxtyping import Float, Int
from torch import Tensor


def extreme_torch(
    src: Float[Tensor, "edge channel"], index: Int[Tensor, " edge"], dim_size: int, largest: bool
) -> Float[Tensor, "node channel"]:
    """Extreme value per node and column, 0 for a node without edges (no winner, no autograd).

    >>> extreme_torch(torch.tensor([[1.], [3.], [3.]]), torch.tensor([0, 0, 0]), 2, True).tolist()
    [[3.0], [0.0]]
    """
    idx = index.long().view(-1, 1).expand(src.shape)
    out = src.new_zeros(dim_size, src.shape[1])
    # include_self=False: rows that receive an edge take the extreme of their edges only.
    return out.scatter_reduce_(0, idx, src, "amax" if largest else "amin", include_self=False)


def arg_extreme_torch(
    src: Float[Tensor, "edge channel"], index: Int[Tensor, " edge"], dim_size: int, largest: bool
) -> tuple[Float[Tensor, "node channel"], Int[Tensor, "node channel"]]:
    """Extreme value and lowest winning edge per node and column (no autograd).

    >>> out, arg = arg_extreme_torch(torch.tensor([[1.], [3.], [3.]]), torch.tensor([0, 0, 0]), 2, True)
    >>> out.tolist(), arg.tolist()
    ([[3.0], [0.0]], [[1], [-1]])
    """
    num_edges, channels = src.shape
    idx = index.long().view(-1, 1).expand(num_edges, channels)
    out = extreme_torch(src, index, dim_size, largest)
    reached = out.gather(0, idx)
    is_winner = src == reached
    if bool(out.isnan().any()):
        is_winner |= src.isnan() & reached.isnan()
    edge_ids = torch.arange(num_edges, device=src.device).view(-1, 1).expand(num_edges, channels)
    candidates = torch.where(is_winner, edge_ids, num_edges)
    arg = torch.full((dim_size, channels), num_edges, dtype=torch.long, device=src.device)
    arg.scatter_reduce_(0, idx, candidates, "amin", include_self=True)
    arg[arg == num_edges] = -1
    return out, arg


def winner_gradient(
    grad_out: Float[Tensor, "node channel"], arg: Int[Tensor, "node channel"], num_edges: int
) -> Float[Tensor, "edge channel"]:
    """Send ``grad_out[v, c]`` to edge ``arg[v, c]``; rows with ``arg = -1`` send nothing.

    .. math:: \\partial \\mathrm{src}_{e c} = \\sum_v [\\mathrm{arg}_{v c} = e]\\, \\partial \\mathrm{out}_{v c}

    Winners of distinct nodes are distinct edges, so this is a plain scatter; it is
    written with differentiable ops so double backward works.

    >>> winner_gradient(torch.tensor([[5.], [7.]]), torch.tensor([[2], [-1]]), 3).tolist()
    [[0.0], [0.0], [5.0]]
    """
    grad_src = grad_out.new_zeros(num_edges, grad_out.shape[1])
    if num_edges == 0:
        return grad_src + 0 * grad_out.sum()  # keeps the graph for double backward
    valid = arg >= 0
    return grad_src.scatter_add(0, arg.clamp(min=0), grad_out * valid)


def winner_gradient_adjoint(
    grad_grad_src: Float[Tensor, "edge channel"], arg: Int[Tensor, "node channel"]
) -> Float[Tensor, "node channel"]:
    """The adjoint of :func:`winner_gradient`: read each node's winner (0 where none).

    >>> winner_gradient_adjoint(torch.tensor([[1.], [2.], [3.]]), torch.tensor([[2], [-1]])).tolist()
    [[3.0], [0.0]]
    """
    if grad_grad_src.shape[0] == 0:
        return grad_grad_src.new_zeros(arg.shape)
    return grad_grad_src.gather(0, arg.clamp(min=0)) * (arg >= 0)
