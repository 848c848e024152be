"""Scatter reductions over the edge axis: the one aggregation entry point of hookgnn.

Every aggregation in hookgnn goes through :func:`scatter`. For a source tensor
``src`` of shape ``[E, *F]`` and a destination ``index`` of shape ``[E]`` with values
in ``[0, N)``, node ``v`` receives

.. math::

    \\mathrm{out}_v = \\bigoplus_{e \\,:\\, \\mathrm{index}_e = v} \\mathrm{src}_e

with :math:`\\oplus` one of sum, mean, max or min, independently for every feature.

Rules (the same for every backend):

* a node with no incoming edge gets 0 and sends no gradient;
* for max / min, the gradient of ``out[v, f]`` flows to exactly one edge, the
  *winner* ``arg[v, f]``; among tied edges the lowest edge index wins;
* a maximum equal to 0 is not special (unlike ``scatter_reduce(amax,
  include_self=False)`` on a zero-initialised output, which halves its gradient);
* any number of trailing feature dimensions, non-contiguous inputs and ``E = 0``
  are accepted;
* ``arg`` is ``-1`` for a node with no incoming edge;
* NaN is the extreme of everything (as in :func:`torch.amax`), won by its lowest edge;
* float32/float64 (also float16/bfloat16) values, int32/int64 index.

Max/min run on a backend (:mod:`hookgnn.ops.backend`): a compiled C++ kernel on CPU by
default, a Triton kernel for CUDA tensors (when triton is installed), plain PyTorch, or
``torch_scatter``; all give identical ``out`` and ``arg``. When no gradient is needed
(grad mode off, or ``src`` does not require grad) :func:`scatter` takes a value-only path
that skips the winners, with bit-identical values. The compiled and triton kernels first
group the edges by destination (a :class:`~hookgnn.ops.plan.ScatterPlan`); pass one with
``plan=`` or run inside :func:`~hookgnn.ops.plan.scatter_plans` to compute it once per
index instead of once per call.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from hookgnn.ops.arg_extreme import NEEDS_PLAN, ArgExtreme, extreme_forward
from hookgnn.ops.backend import resolve_backend, validate_backend
from hookgnn.ops.checks import check_index, check_shapes
from hookgnn.ops.plan import ScatterPlan, cached_plan

Reduce = Literal["sum", "mean", "max", "min"]
REDUCTIONS: tuple[Reduce, ...] = ("sum", "mean", "max", "min")


def _flatten(src: Tensor) -> tuple[Tensor, tuple[int, ...]]:
    feat = tuple(src.shape[1:])
    return src.reshape(src.shape[0], math.prod(feat)), feat


def _checked_plan(src: Tensor, index: Tensor, dim_size: int, impl: str, plan: ScatterPlan | None) -> ScatterPlan | None:
    """Check the arguments; return the plan ``impl`` walks (given, cached or built)."""
    if plan is not None and not isinstance(plan, ScatterPlan):
        raise TypeError(f"scatter plan must be a ScatterPlan, got {type(plan).__name__}")
    check_shapes(src, index, dim_size)
    # A plan is built from a checked index, and matches only that tensor at that version:
    # with one, the pass over the index values is not repeated.
    if plan is not None:
        plan.check(index, dim_size)
    elif impl in NEEDS_PLAN:
        plan = cached_plan(index, dim_size) or ScatterPlan.build(index, dim_size)
    else:
        check_index(src, index, dim_size)
    return plan


def _scatter_extreme(
    src: Tensor, index: Tensor, dim_size: int, largest: bool, backend: str | None, plan: ScatterPlan | None,
    with_arg: bool,
) -> tuple[Tensor, Tensor | None]:
    impl = resolve_backend(src, backend)
    plan = _checked_plan(src, index, dim_size, impl, plan)
    flat, feat = _flatten(src)
    if torch.is_grad_enabled() and src.requires_grad:
        out, arg = ArgExtreme.apply(flat, index, dim_size, largest, impl, plan)
    else:
        out, arg = extreme_forward(impl, flat, index, dim_size, largest, with_arg, plan)
    out = out.view(dim_size, *feat)
    return out, None if not with_arg else arg.long().view(dim_size, *feat)


def scatter_max(
    src: Float[Tensor, "edge *feat"],
    index: Int[Tensor, " edge"],
    dim_size: int,
    *,
    backend: str | None = None,
    plan: ScatterPlan | None = None,
) -> tuple[Float[Tensor, "node *feat"], Int[Tensor, "node *feat"]]:
    """Per-node maximum over incoming edges and the winning edge.

    Returns ``(out, arg)``: ``out[v] = max_{e: index[e]=v} src[e]`` (0 where ``v`` has no
    edge) and ``arg[v]`` the lowest edge index attaining it (-1 where none), int64.
    ``backend`` overrides the implementation for this call (see :mod:`hookgnn.ops.backend`);
    ``plan`` is the index's precomputed :class:`~hookgnn.ops.plan.ScatterPlan`.

    >>> out, arg = scatter_max(torch.tensor([1., 3., 3., -2.]), torch.tensor([0, 0, 0, 2]), 3)
    >>> out.tolist(), arg.tolist()
    ([3.0, 0.0, -2.0], [1, -1, 3])
    """
    out, arg = _scatter_extreme(src, index, dim_size, True, backend, plan, True)
    return out, arg  # type: ignore[return-value]


def scatter_min(
    src: Float[Tensor, "edge *feat"],
    index: Int[Tensor, " edge"],
    dim_size: int,
    *,
    backend: str | None = None,
    plan: ScatterPlan | None = None,
) -> tuple[Float[Tensor, "node *feat"], Int[Tensor, "node *feat"]]:
    """Per-node minimum over incoming edges and the winning edge (see :func:`scatter_max`).

    >>> out, arg = scatter_min(torch.tensor([1., 0., 0.]), torch.tensor([1, 1, 1]), 2)
    >>> out.tolist(), arg.tolist()
    ([0.0, 0.0], [-1, 1])
    """
    out, arg = _scatter_extreme(src, index, dim_size, False, backend, plan, True)
    return out, arg  # type: ignore[return-value]


def scatter(
    src: Float[Tensor, "edge *feat"],
    index: Int[Tensor, " edge"],
    dim_size: int,
    reduce: Reduce = "sum",
    *,
    backend: str | None = None,
    plan: ScatterPlan | None = None,
) -> Float[Tensor, "node *feat"]:
    """Reduce edge values onto their destination nodes.

    ``reduce`` is ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``; a node without incoming
    edges gets 0 (see the module docstring for the gradient rules). ``backend`` picks the
    max/min implementation for this call and ``plan`` passes the index's precomputed
    :class:`~hookgnn.ops.plan.ScatterPlan`; sum and mean always use ``index_add``.
    Max/min compute the winning edges only when a gradient is needed.

    >>> scatter(torch.tensor([[1.], [2.], [4.]]), torch.tensor([1, 1, 0]), 3, "mean").tolist()
    [[4.0], [1.5], [0.0]]
    """
    if reduce in ("max", "min"):
        return _scatter_extreme(src, index, dim_size, reduce == "max", backend, plan, False)[0]
    if reduce not in ("sum", "mean"):
        raise ValueError(f"unknown reduce {reduce!r}; expected one of {REDUCTIONS}")
    if backend is not None:
        validate_backend(backend)
    if plan is not None:
        plan.check(index, dim_size)
    check_index(src, index, dim_size)
    index = index.long()
    out = src.new_zeros(dim_size, *src.shape[1:]).index_add(0, index, src)
    if reduce == "mean":
        count = torch.bincount(index, minlength=dim_size).clamp(min=1).to(src.dtype)
        out = out / count.view(-1, *([1] * (src.dim() - 1)))
    return out


__all__ = ["REDUCTIONS", "Reduce", "check_index", "scatter", "scatter_max", "scatter_min"]
