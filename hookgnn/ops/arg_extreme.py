"""Max/min with the winning edge on every backend, and its autograd function.

:func:`extreme_forward` runs one backend (``"compiled"``, ``"triton"``, ``"torch"``,
``"torch_scatter"``) on ``src [E, C]``; :class:`ArgExtreme` wraps it for autograd, saving
the winners ``arg [N, C]`` (and the plan, which the compiled backward walks). The
backward sends ``grad_out[v, c]`` to edge ``arg[v, c]`` only,

.. math:: \\partial \\mathrm{src}_{e c} = \\sum_v [\\mathrm{arg}_{v c} = e]\\, \\partial \\mathrm{out}_{v c},

by :class:`WinnerGradient`, whose own backward is the adjoint gather, so double backward
works on every backend. ``arg`` may be int32 here (the compiled kernel stores it so when
``E < 2**31``); :func:`hookgnn.ops.scatter_max` hands users int64.
"""

from __future__ import annotations

import torch
from torch import Tensor

from hookgnn.ops import compiled, triton_extreme
from hookgnn.ops.extreme_torch import arg_extreme_torch, extreme_torch, winner_gradient, winner_gradient_adjoint
from hookgnn.ops.plan import ScatterPlan
from hookgnn.ops.torch_scatter_compat import arg_extreme_torch_scatter

NEEDS_PLAN = ("compiled", "triton")  # backends that walk the edges grouped by destination


def extreme_forward(
    impl: str, src: Tensor, index: Tensor, dim_size: int, largest: bool, with_arg: bool, plan: ScatterPlan | None
) -> tuple[Tensor, Tensor | None]:
    """``(out, arg)`` of ``src [E, C]`` on backend ``impl`` (no autograd); ``arg`` is
    ``None`` when ``with_arg`` is false, and ``out`` is then bit-identical.

    >>> src, idx = torch.tensor([[1.], [3.], [3.]]), torch.tensor([0, 0, 0])
    >>> out, arg = extreme_forward("torch", src, idx, 2, True, True, None)
    >>> out.tolist(), arg.tolist()
    ([[3.0], [0.0]], [[1], [-1]])
    """
    if impl == "compiled":
        kernel = compiled.load()
        assert kernel is not None and plan is not None  # resolve_backend checked the build
        out, arg = kernel.forward(src.contiguous(), plan.rowptr, plan.perm, largest, with_arg, compiled.threads())
        return out, arg if with_arg else None
    if impl == "triton":
        assert plan is not None
        return triton_extreme.arg_extreme_triton(src, plan.rowptr, plan.perm, largest, with_arg)
    if impl == "torch_scatter":
        out, arg = arg_extreme_torch_scatter(src, index, dim_size, largest)
        return out, arg if with_arg else None
    if not with_arg:
        return extreme_torch(src, index, dim_size, largest), None
    return arg_extreme_torch(src, index, dim_size, largest)


class ArgExtreme(torch.autograd.Function):
    """Max/min that saves the winning edge; backward is :class:`WinnerGradient`."""

    @staticmethod
    def forward(ctx, src: Tensor, index: Tensor, dim_size: int, largest: bool, impl: str,  # type: ignore[override]
                plan: ScatterPlan | None):
        out, arg = extreme_forward(impl, src, index, dim_size, largest, True, plan)
        rowptr, perm = (plan.rowptr, plan.perm) if plan is not None else (None, None)
        ctx.save_for_backward(arg, rowptr, perm)
        ctx.num_edges, ctx.impl = src.shape[0], impl
        ctx.mark_non_differentiable(arg)
        return out, arg

    @staticmethod
    def backward(ctx, grad_out: Tensor, _grad_arg: Tensor):  # type: ignore[override]
        arg, rowptr, perm = ctx.saved_tensors
        grad_src = WinnerGradient.apply(grad_out, arg, rowptr, perm, ctx.num_edges, ctx.impl)
        return grad_src, None, None, None, None, None


class WinnerGradient(torch.autograd.Function):
    """``grad_src [E, C]`` from ``grad_out [N, C]`` and the winners, on the backend that
    ran the forward; its backward is :func:`winner_gradient_adjoint`."""

    @staticmethod
    def forward(ctx, grad_out: Tensor, arg: Tensor, rowptr: Tensor | None, perm: Tensor | None,  # type: ignore[override]
                num_edges: int, impl: str):
        ctx.save_for_backward(arg)
        if impl == "compiled":
            kernel = compiled.load()
            assert kernel is not None
            return kernel.backward(grad_out.contiguous(), arg, rowptr, perm, compiled.threads())
        if impl == "triton":
            return triton_extreme.winner_gradient_triton(grad_out, arg, num_edges)
        return winner_gradient(grad_out, arg, num_edges)

    @staticmethod
    def backward(ctx, grad_grad_src: Tensor):  # type: ignore[override]
        (arg,) = ctx.saved_tensors
        return winner_gradient_adjoint(grad_grad_src, arg.long()), None, None, None, None, None
