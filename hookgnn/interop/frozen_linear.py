"""The input gradient of a frozen ``nn.Linear`` with a narrow input, in the layout BLAS is fast at.

An ``nn.Linear(d_in, d_out)`` computes :math:`y = x W^\\top + b`; its input gradient is
:math:`\\partial x = \\partial y\\, W`, ``[R, d_out] @ [d_out, d_in]``. Autograd computes it as that
row-major product, which MKL runs several times slower than the same numbers as
:math:`(W^\\top \\partial y^\\top)^\\top` when ``d_in`` is much smaller than ``d_out`` (a message
MLP's first layer, ``[x_j, e_ij]`` -> 64 hidden units: 4x at ``R`` = 24,000, ``d_in`` = 9, 1 thread).
:func:`frozen_linear` is that layer with the second form: its output is bit for bit the layer's
(the same ``F.linear`` call); its input gradient equals autograd's up to float rounding (the same
products, summed in another order). :class:`~hookgnn.interop.session.Session` uses it only where
no parameter gradient is asked for (the layer's parameters are frozen, as attribution freezes
them: :func:`~hookgnn.cache.grad_taps.frozen_parameters`) and the input needs a gradient
(:func:`takes`); any other call is the layer's own.

Which widths (:func:`narrow`): the gain is a property of the BLAS kernels, not of the maths, so the
rule keeps to the widths where it was measured to win (torch 2.13.0 CPU wheel, MKL, AMD EPYC, 1 thread;
``dy @ W`` time over ``(W^T dy^T)^T`` time at 3,000 and 24,000 rows): ``d_in`` 4-12, 1.1-6.2x at
``d_out`` 32-256; ``d_in`` 2-3, 1.2-2.3x at ``d_out`` <= 64 but 0.45-0.86x at 128-256 and 24,000 rows;
``d_in`` 1 and 16, 0.7-1.2x (not taken).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn


class _Frozen(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(weight)
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:  # type: ignore[override]
        (weight,) = ctx.saved_tensors
        flat = grad.reshape(-1, grad.shape[-1])
        dx = weight.t().mm(flat.t()).t()  # [R, d_in], column-major: what (W^T dy^T) gives
        return dx.reshape(*grad.shape[:-1], weight.shape[1]), None, None


def narrow(d_in: int, d_out: int) -> bool:
    """Whether a layer ``d_in -> d_out`` is one whose input gradient :func:`frozen_linear` computes faster
    (the measured widths of the module docstring): ``4 <= d_in <= 12``, or ``d_in`` 2-3 with ``d_out <= 64``.

    >>> narrow(2, 64), narrow(9, 64), narrow(16, 64), narrow(2, 128)
    (True, True, False, False)

    :param d_in: the layer's ``in_features``.
    :param d_out: the layer's ``out_features``.
    """
    return d_in < d_out and (4 <= d_in <= 12 or (2 <= d_in <= 3 and d_out <= 64))


def frozen_and_narrow(layer: nn.Linear) -> bool:
    """Whether ``layer``'s parameters are frozen (no ``requires_grad``) and its widths are :func:`narrow`:
    the layers :func:`frozen_linear` may serve (checked once per forward, before :func:`takes`).

    >>> frozen_and_narrow(nn.Linear(2, 8).requires_grad_(False)), frozen_and_narrow(nn.Linear(2, 8))
    (True, False)

    :param layer: the linear layer.
    """
    w, b = layer.weight, layer.bias
    return not w.requires_grad and (b is None or not b.requires_grad) and w.dim() == 2 and narrow(w.shape[1], w.shape[0])


def takes(layer: nn.Linear, x: Tensor) -> bool:
    """Whether :func:`frozen_linear` serves this call: grad mode on, ``x`` needs a gradient, the layer is
    :func:`frozen_and_narrow`, CPU tensors of the weight's dtype, not while compiling.

    >>> lin = nn.Linear(2, 8).requires_grad_(False)
    >>> takes(lin, torch.zeros(3, 2, requires_grad=True)), takes(lin, torch.zeros(3, 2))
    (True, False)

    :param layer: the linear layer.
    :param x: its input.
    """
    w = layer.weight
    return (torch.is_grad_enabled() and isinstance(x, Tensor) and x.requires_grad and frozen_and_narrow(layer)
            and x.dim() >= 1 and x.dtype == w.dtype and x.device.type == "cpu" and w.device.type == "cpu"
            and not torch.compiler.is_compiling())


def frozen_linear(layer: nn.Linear, x: Float[Tensor, "*rows d_in"]) -> Float[Tensor, "*rows d_out"]:
    """``layer(x)``'s value (bit for bit), with the input gradient of the module docstring. Call it only
    where :func:`takes` is true.

    >>> lin = nn.Linear(2, 8).requires_grad_(False)
    >>> x = torch.randn(5, 2, requires_grad=True)
    >>> torch.equal(frozen_linear(lin, x), lin(x))
    True
    >>> g = torch.randn(5, 8)
    >>> torch.allclose(torch.autograd.grad(frozen_linear(lin, x), x, g)[0], g @ lin.weight)
    True

    :param layer: the linear layer (its ``weight`` and ``bias`` are read).
    :param x: its input ``[..., d_in]``.
    """
    return _Frozen.apply(x, layer.weight, layer.bias)
