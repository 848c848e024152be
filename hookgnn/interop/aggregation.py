"""PyG's min / max aggregation on hookgnn's scatter kernel, with PyG's own values and gradients.

PyG (``aggr="min"`` / ``"max"``, :class:`torch_geometric.nn.aggr.MinAggregation` /
``MaxAggregation``) reduces on CPU with ``torch.zeros(N, F).scatter_reduce_(0, index, src,
"amin" / "amax", include_self=False)``: node ``v`` gets

.. math:: \\mathrm{out}_{v f} = \\min_{e:\\, \\mathrm{index}_e = v} \\mathrm{src}_{e f}
    \\quad (0 \\text{ where } v \\text{ has no incoming edge}),

and torch's backward splits the gradient evenly among the edges tied at the extreme, counting
the zero the output started from as one more tie when the extreme is 0:

.. math:: \\partial \\mathrm{src}_{e f} = [\\mathrm{src}_{e f} = \\mathrm{out}_{v f}]\\,
    \\frac{\\partial \\mathrm{out}_{v f}}{[\\mathrm{out}_{v f} = 0] + \\sum_{e':\\, \\mathrm{index}_{e'} = v}
    [\\mathrm{src}_{e' f} = \\mathrm{out}_{v f}]}, \\qquad v = \\mathrm{index}_e.

:func:`fast_extreme` computes the same numbers: the values with hookgnn's kernel
(:func:`hookgnn.ops.scatter`, exact: a minimum is one of its inputs) and the gradient with the
formula above, evaluated in torch's order, so both are bit for bit PyG's (on the kernel's backend, in one
pass over the forward's sort of the edges, ``tie_split_backward`` of :mod:`hookgnn.ops.compiled`; the
same operations on every entry). It is used by
:class:`~hookgnn.interop.session.Session` for the calls it can take (see :func:`takes`); any
other call (``ptr`` given, another axis, a dtype or device the kernel does not serve) runs
PyG's own code.
"""

from __future__ import annotations

from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from hookgnn.ops import compiled, scatter
from hookgnn.ops.backend import resolve_backend
from hookgnn.ops.plan import cached_plan

#: Without a gradient, the kernel pays (sorting the index, checks) only from about this many entries of ``x``.
LARGE = 1 << 16

#: With a gradient, from about this many entries (forward + backward, 1 thread: 1.6x PyG's time at 2,048
#: entries, about even at 8,192-16,384, 0.7-0.85x from 24,000 entries): below it, PyG's own code.
GRAD_LARGE = 20_000

#: Float dtypes whose values and gradients are known equal to PyG's (float16 / bfloat16 untested).
DTYPES = (torch.float32, torch.float64)


class _Extreme(torch.autograd.Function):
    """Values from the kernel; backward: torch's tie-splitting gradient of ``scatter_reduce``."""

    @staticmethod
    def forward(ctx: Any, src: Tensor, index: Tensor, dim_size: int, largest: bool) -> Tensor:  # type: ignore[override]
        with torch.no_grad():
            out = scatter(src, index, dim_size, "max" if largest else "min")
        ctx.save_for_backward(src, index, out)
        # the forward's sort of the index (shared by the rounds), for the kernel's backward
        ctx.plan = cached_plan(index, dim_size) if resolve_backend(src) == "compiled" else None
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        src, index, out = ctx.saved_tensors
        plan = ctx.plan
        if plan is not None and not torch.is_grad_enabled() and src.is_contiguous():  # one pass over the CSR
            kernel = compiled.load()
            if kernel is not None:
                return (kernel.tie_split_backward(grad.contiguous(), src, out.contiguous(), plan.rowptr, plan.perm,
                                                  torch.get_num_threads()), None, None, None)
        won = src == out.index_select(0, index)
        ties = (out == 0).to(grad.dtype).index_add_(0, index, won.to(grad.dtype))
        return won * (grad / ties).index_select(0, index), None, None, None


def takes(x: Tensor, index: Tensor | None, ptr: Tensor | None, dim_size: int | None, dim: int) -> bool:
    """Whether :func:`fast_extreme` serves this aggregation call, giving PyG's exact result: ``x [E, F]``
    float32/float64 on the CPU reduced over ``dim`` 0 (or -2) by a 1-D ``index`` of ``E`` entries,
    ``dim_size`` given, no ``ptr`` (PyG's segment path), not while compiling; and where it pays: ``x``
    has at least :data:`LARGE` entries, or :data:`GRAD_LARGE` where it needs a gradient (torch's backward
    is the slow part). Below those sizes the kernel's fixed cost (a sort of the index, checks) exceeds
    what it saves, and a tiny wrapped forward would be slower than PyG's.

    >>> x = torch.zeros(GRAD_LARGE // 2, 2, requires_grad=True)
    >>> index = torch.zeros(GRAD_LARGE // 2, dtype=torch.long)
    >>> takes(x, index, None, 1, -2)
    True
    >>> takes(x.detach(), index, None, 1, -2)  # no gradient, not large: PyG's own
    False
    >>> takes(x[:3], index[:3], None, 1, -2)  # a gradient, but small: PyG's own
    False
    >>> takes(x, index, None, None, -2)
    False
    """
    return (isinstance(x, Tensor) and isinstance(index, Tensor) and ptr is None and dim_size is not None
            and (x.numel() >= LARGE or (x.numel() >= GRAD_LARGE and x.requires_grad and torch.is_grad_enabled()))
            and x.dim() == 2 and dim in (0, -2) and x.dtype in DTYPES and x.device.type == "cpu"
            and index.dim() == 1 and index.shape[0] == x.shape[0] and index.dtype == torch.int64
            and not torch.compiler.is_compiling())


def fast_extreme(src: Float[Tensor, "edge feat"], index: Int[Tensor, " edge"], dim_size: int,
                 largest: bool) -> Float[Tensor, "node feat"]:
    """PyG's ``scatter(src, index, 0, dim_size, reduce="max" if largest else "min")``, values and
    gradient (module docstring), on hookgnn's kernel. Call it only where :func:`takes` is true.

    >>> src = torch.tensor([[0.], [0.], [1.], [-1.]], requires_grad=True)
    >>> out = fast_extreme(src, torch.tensor([0, 0, 0, 1]), 3, largest=False)
    >>> out.flatten().tolist()
    [0.0, -1.0, 0.0]
    >>> torch.autograd.grad(out.sum(), src)[0].flatten().tolist()  # two tied zeros and the initial 0: 1/3 each
    [0.3333333432674408, 0.3333333432674408, 0.0, 1.0]

    :param src: the messages ``[E, F]``.
    :param index: each message's destination node ``[E]``.
    :param dim_size: the number of nodes ``N``.
    :param largest: ``True`` for max, ``False`` for min.
    """
    return _Extreme.apply(src, index, dim_size, largest)
