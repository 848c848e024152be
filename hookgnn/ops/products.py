"""The row and the feature sums of an elementwise product, without the product.

Attribution with ``keep="rows"`` returns, per hook, the row sums and the feature sums of
:math:`p = \\Delta a \\odot \\bar g`:

.. math::

    \\mathrm{by\\_row}_r = \\sum_f a_{r f}\\, b_{r f}, \\qquad
    \\mathrm{by\\_feature}_f = \\sum_r a_{r f}\\, b_{r f},

with ``f`` running over every axis but the first. Made as ``p = a * b`` then two sums, that
is three passes over ``[rows, features]`` memory and one more ``[rows, features]`` tensor
written; :func:`product_sums` reads ``a`` and ``b`` once and writes only the two sums
(``product_sums`` of hookgnn's compiled CPU kernel, ``csrc/product_sums.cpp``). The kernel
accumulates in double in a fixed order (8 lanes per row; blocks of 1,024 rows per feature,
added in block order), so its result is the same bit for bit on any number of threads, and
differs from ``(a * b).sum(...)`` in float32 only by float rounding (it is the more accurate).

Plain PyTorch computes it (``a * b``, then the two sums) where the kernel does not apply:
``HOOKGNN_SCATTER_BACKEND=torch`` (or ``use_backend("torch")``), tensors off the CPU or not
float32/float64, ``a`` and ``b`` of different dtypes (promoted as ``a * b`` promotes), grad
mode with an input that requires grad (the result is then differentiable), or no compiled
kernel here.
"""

from __future__ import annotations

import math

import torch
from jaxtyping import Float, Int
from torch import Tensor

from hookgnn.ops import compiled
from hookgnn.ops.backend import resolve_backend

_KERNEL_DTYPES = (torch.float32, torch.float64)


def _kernel_applies(a: Tensor, b: Tensor) -> bool:
    return (a.dtype == b.dtype and a.dtype in _KERNEL_DTYPES and a.device.type == "cpu" and b.device.type == "cpu"
            and not (torch.is_grad_enabled() and (a.requires_grad or b.requires_grad))
            and resolve_backend(a) == "compiled")


def product_sums(
    a: Float[Tensor, "..."], b: Float[Tensor, "..."], overwrite: bool = False
) -> tuple[Float[Tensor, " row"], Float[Tensor, "..."]]:
    """``((a * b)`` summed over every axis but the first, ``(a * b)`` summed over the first``)``, in one
    pass over ``a`` and ``b`` where the compiled kernel applies (see the module docstring).

    :param a: ``[rows, *features]``, e.g. an activation difference ``[rows, d]``.
    :param b: ``[rows, *features]`` (``a``'s shape), e.g. the gradient there.
    :param overwrite: whether the plain-PyTorch path may write the product into ``a`` (no fresh
        ``[rows, ...]`` buffer; ``a``'s values are then lost). The compiled kernel never writes ``a``.
    :returns: ``(by_row [rows], by_feature [*feature])``, of ``a * b``'s dtype.

    ``ValueError`` when ``a`` and ``b`` differ in shape or ``a`` has no first axis.

    >>> a = torch.tensor([[1., 2., 3.], [4., 5., 6.]])
    >>> b = torch.tensor([[1., 0., 1.], [2., 1., 0.]])
    >>> by_row, by_feature = product_sums(a, b)
    >>> by_row.tolist(), by_feature.tolist()
    ([4.0, 13.0], [9.0, 5.0, 3.0])
    """
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"product_sums takes two tensors, got {type(a).__name__} and {type(b).__name__}")
    if a.shape != b.shape:
        raise ValueError(f"product_sums: a and b must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    if a.dim() == 0:
        raise ValueError("product_sums: a and b need a first (row) axis, got 0-d tensors")
    if a.device != b.device:
        raise ValueError(f"product_sums: a and b must be on one device, got {a.device} and {b.device}")
    rows, features = a.shape[0], a.shape[1:]
    width = math.prod(features)  # (no -1 in a reshape: ambiguous for a tensor without rows)
    if _kernel_applies(a, b):
        kernel = compiled.load()
        if kernel is not None:
            by_row, by_feature = kernel.product_sums(a.reshape(rows, width).contiguous(),
                                                     b.reshape(rows, width).contiguous(), compiled.threads())
            return by_row, by_feature.view(features)
    in_place = overwrite and a.dtype == torch.result_type(a, b) and not (torch.is_grad_enabled() and a.requires_grad)
    product = a.mul_(b) if in_place else a * b
    return product.reshape(rows, width).sum(1), product.sum(0)


def gathered_row_sums(
    q: Float[Tensor, "node d"], index: Int[Tensor, " row"], b: Float[Tensor, "row d"]
) -> Float[Tensor, " row"]:
    """The row sums of ``q[index] * b``, :math:`\\sum_f q_{\\mathrm{index}_r f}\\, b_{r f}`, without the
    gathered ``[rows, d]`` tensor where the compiled kernel applies (as for :func:`product_sums`; the same
    bits as ``product_sums(q[index], b)[0]`` there, on any number of threads).

    :param q: ``[N, d]``, e.g. a node-level difference already multiplied by a weight.
    :param index: ``[rows]`` int64, each in ``[0, N)``: the row of ``q`` each row of ``b`` reads.
    :param b: ``[rows, d]``, e.g. a gradient on the edges.
    :returns: ``[rows]``, of ``q * b``'s dtype.

    ``ValueError`` naming the first index out of range, or shapes that do not fit.

    >>> q = torch.tensor([[1., 2.], [3., 4.]])
    >>> gathered_row_sums(q, torch.tensor([1, 1, 0]), torch.tensor([[1., 0.], [0., 1.], [1., 1.]])).tolist()
    [3.0, 4.0, 3.0]
    """
    if q.dim() != 2 or b.dim() != 2 or index.dim() != 1 or b.shape != (index.shape[0], q.shape[1]):
        raise ValueError(f"gathered_row_sums: q must be [N, d], index [rows] and b [rows, d], got q "
                         f"{tuple(q.shape)}, index {tuple(index.shape)}, b {tuple(b.shape)}")
    if index.dtype != torch.long:
        raise ValueError(f"gathered_row_sums: index must be int64, got {index.dtype}")
    if not (q.device == index.device == b.device):
        raise ValueError(f"gathered_row_sums: q, index and b must be on one device, got {q.device}, "
                         f"{index.device} and {b.device}")
    bad = ((index < 0) | (index >= q.shape[0])).nonzero()
    if bad.numel():
        r = int(bad[0, 0])
        raise ValueError(f"gathered_row_sums: index[{r}] = {int(index[r])} is out of range for q's {q.shape[0]} rows")
    if _kernel_applies(q, b):
        kernel = compiled.load()
        if kernel is not None:
            return kernel.gathered_row_sums(q.contiguous(), index.contiguous(), b.contiguous(), compiled.threads())
    return (q.index_select(0, index) * b).sum(1)


__all__ = ["gathered_row_sums", "product_sums"]
