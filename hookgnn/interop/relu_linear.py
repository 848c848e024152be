"""A frozen ``nn.Linear`` fed by an ``nn.ReLU``: the relu's backward fused into the layer's input gradient.

In a message or update MLP ``Linear -> ReLU -> Linear(d_in, d_out)`` with frozen parameters, the backward
of the second layer and of the relu is

.. math:: \\partial r = \\partial z\\, W, \\qquad \\partial y = [r > 0]\\; \\partial r

(:math:`r = \\mathrm{relu}(y)`, ``[R, d_out] @ [d_out, d_in]`` and torch's ``threshold_backward``, under
which a NaN passes): two passes over ``[R, d_in]`` that write :math:`\\partial r` out and read it back, at
20 IG copies of every edge memory-bound. :func:`relu_linear` computes :math:`\\partial y` in one pass
(``relu_linear_backward`` of hookgnn's compiled kernel, :mod:`hookgnn.ops.compiled`; plain torch,
the same two steps, where the kernel is not built or ``HOOKGNN_SCATTER_BACKEND=torch``), equal to
autograd's up to float rounding (the same products, summed in another order). The forward values
are bit for bit the modules' own: :func:`relu` is ``torch.relu``, :func:`relu_linear` ``F.linear``.

How the two nodes meet: :func:`relu` saves its output as torch's relu does; :func:`relu_linear` is
called (see :func:`takes`) only on a tensor that :func:`relu` made, that no hook point with something
attached has seen (:func:`observe`: a hook may keep it and ask for the gradient there) and that
carries no tensor hook;
its backward gives the relu node the gradient already masked, and the relu's backward passes on,
unchanged, exactly that tensor (its only consumer's gradient), and masks any other (a sum with other
consumers' gradients: masking is linear, and masking twice is masking once). Used by
:class:`~hookgnn.interop.session.Session` for exact ``nn.ReLU`` / ``nn.Linear`` modules only while
no parameter gradient is asked for (attribution freezes them) and on at least :data:`LARGE` entries.
Where a sequential's loop handed the relu's output to the layer as its only reader (:func:`hand_over`) and the
backward is hookgnn's gradient taps' single one (:func:`~hookgnn.cache.grad_taps.single_backward`: no graph
kept), the kernel writes :math:`\\partial y` over the relu's output (``relu_linear_backward_``, the same values)
instead of into a fresh buffer.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor, nn

from hookgnn.cache.grad_taps import single_backward
from hookgnn.ops import compiled
from hookgnn.ops.backend import resolve_backend

#: The relu's output has at least this many entries (below it, a tiny forward pays more than it saves).
LARGE = 1 << 14

#: The layer's ``out_features`` (the product's inner size) at most this: the kernel's per-row loop loses to
#: BLAS on wider products (fused over ``mm`` + ``threshold_backward`` time, 24,000 rows, 1 thread, shared machine:
#: 0.67-0.94x at 4 -> 32, 8 -> 64, 12 -> 64, 8 -> 256, 1 -> 64 about 0.5x; but 1.14x at 16 -> 64).
MAX_OUT = 12

#: Float dtypes the kernel serves.
DTYPES = (torch.float32, torch.float64)


class _Relu(torch.autograd.Function):
    """``torch.relu``; backward: ``threshold_backward``, except on a gradient :func:`relu_linear` masked."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, inplace: bool) -> Tensor:  # type: ignore[override]
        # in place: x's memory (an alias sharing its version counter) becomes the output, a new tensor to autograd
        r = torch.relu_(x.detach()) if inplace else torch.relu(x)
        ctx.save_for_backward(r)
        ctx.masked, ctx.observed, ctx.sole = [], False, False  # sole: read by one fused layer only (hand_over)
        return r

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        masked, ctx.masked = ctx.masked, []
        if any(grad is m for m in masked):  # the fused layer's gradient alone: already masked
            return grad, None
        (r,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad, r, 0), None


class _ReluLinear(torch.autograd.Function):
    """``F.linear``; backward: the input gradient masked by the relu's output, handed to the relu node."""

    @staticmethod
    def forward(ctx: Any, r: Tensor, weight: Tensor, bias: Tensor | None, node: Any) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(r, weight)
        ctx.node = node
        return F.linear(r, weight, bias)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        r, weight = ctx.saved_tensors
        node = ctx.node  # the relu's node (upstream of this one, so no cycle); kept for a retain_graph rerun
        if torch.is_grad_enabled():  # create_graph: the differentiable product; the relu node masks it
            return grad @ weight, None, None, None
        flat = grad.reshape(-1, grad.shape[-1]).contiguous()
        rows = r.reshape(-1, r.shape[-1])
        kernel = compiled.load() if resolve_backend(flat) == "compiled" else None
        if kernel is not None and node.sole and not node.observed and single_backward() and rows.is_contiguous():
            dx = _over_relu_output(kernel, flat, weight.contiguous(), rows)  # r's last reader: its memory is free
        elif kernel is not None:
            dx = kernel.relu_linear_backward(flat, weight.contiguous(), rows, torch.get_num_threads())
        else:
            dx = torch.ops.aten.threshold_backward(flat.mm(weight), rows, 0)
        dx = dx.view(r.shape)
        node.masked.append(dx)
        return dx, None, None, None


def _over_relu_output(kernel: Any, grad: Tensor, weight: Tensor, rows: Tensor) -> Tensor:
    """``relu_linear_backward`` written over the relu's output ``rows`` (the same values, bit for bit)."""
    return kernel.relu_linear_backward_(grad, weight, rows, torch.get_num_threads())


def hand_over(r: Tensor) -> None:
    """Mark ``r``, if :func:`relu` made it and no hook point saw it, as read by the next module alone (a
    sequential's loop passes it on and nothing else: :mod:`hookgnn.interop.inplace_relu`): if that module is a
    layer :func:`relu_linear` serves, its backward may then write the input gradient over ``r`` inside a
    :func:`~hookgnn.cache.grad_taps.single_backward` (the relu's own backward never reads ``r`` on the
    gradient that layer masked, the only one it gets).

    >>> r = relu(torch.randn(3, requires_grad=True))
    >>> hand_over(r); r.grad_fn.sole
    True

    :param r: the tensor a sequential passes from its relu to the next module.
    """
    if type(r.grad_fn) is _Relu._backward_cls and not r.grad_fn.observed and not r._backward_hooks:
        r.grad_fn.sole = True


def takes_relu(x: Tensor) -> bool:
    """Whether :func:`relu` serves this ``nn.ReLU`` call: grad mode on, ``x`` a CPU float32/float64 tensor that
    needs a gradient, of at least :data:`LARGE` entries, not while compiling.

    >>> takes_relu(torch.zeros(LARGE, requires_grad=True)), takes_relu(torch.zeros(8, requires_grad=True))
    (True, False)

    :param x: the relu's input.
    """
    return (torch.is_grad_enabled() and isinstance(x, Tensor) and x.requires_grad and x.numel() >= LARGE
            and x.dtype in DTYPES and x.device.type == "cpu" and not torch.compiler.is_compiling())


def takes_plain_inplace(x: Tensor) -> bool:
    """Whether a granted relu (:mod:`hookgnn.interop.inplace_relu`) that no gradient flows through (grad mode
    off, or ``x`` needs none) runs as torch's own ``torch.relu_``: ``x`` a floating tensor of at least
    :data:`LARGE` entries, not while compiling.

    >>> takes_plain_inplace(torch.zeros(LARGE)), takes_plain_inplace(torch.zeros(LARGE, requires_grad=True))
    (True, False)

    :param x: the relu's input.
    """
    return (isinstance(x, Tensor) and x.is_floating_point() and x.numel() >= LARGE
            and not (x.requires_grad and torch.is_grad_enabled()) and not torch.compiler.is_compiling())


def relu(x: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
    """``torch.relu(x)`` bit for bit, with the same gradient (``threshold_backward``), whose output
    :func:`relu_linear` can take. Call it only where :func:`takes_relu` is true.

    >>> x = torch.randn(4, 3, requires_grad=True)
    >>> torch.equal(relu(x), torch.relu(x))
    True

    :param x: the input.
    """
    return _Relu.apply(x, False)


def relu_(x: Float[Tensor, "*shape"]) -> Float[Tensor, "*shape"]:
    """:func:`relu` written into ``x``'s memory (``torch.relu_``'s values, bit for bit), returned as a new
    tensor whose backward is :func:`relu`'s, and bumping ``x``'s version (a node that saved ``x`` raises in
    the backward instead of reading the relu's output). Autograd's own in-place relu is refused on a view a
    custom function made (a gradient tap's); this one is not. Call it only where :func:`takes_relu` is true
    and nothing but this relu reads ``x`` or its memory afterwards (:mod:`hookgnn.interop.inplace_relu`).

    >>> x = torch.randn(4, 3, requires_grad=True)
    >>> y = x * 1
    >>> want = torch.relu(y)
    >>> r = relu_(y)
    >>> torch.equal(r, want), r.data_ptr() == y.data_ptr(), torch.equal(y, want)
    (True, True, True)
    >>> g = torch.randn(4, 3)
    >>> torch.equal(torch.autograd.grad(r, x, g)[0], g * (want > 0))
    True

    :param x: the input; its memory holds the output afterwards.
    """
    return _Relu.apply(x, True)


def takes(layer: nn.Linear, r: Tensor) -> bool:
    """Whether :func:`relu_linear` serves this call: ``r`` is the output of :func:`relu` itself (no hook, copy or
    view between them) with no tensor hook, contiguous, of the layer's dtype; the layer's parameters are frozen
    and its ``out_features`` at most :data:`MAX_OUT`; grad mode on, not while compiling.

    >>> lin = nn.Linear(3, 2).requires_grad_(False)
    >>> r = relu(torch.randn(5, 3, requires_grad=True))
    >>> takes(lin, r), takes(lin, r.clone()), takes(nn.Linear(3, 2), r)
    (True, False, False)

    :param layer: the linear layer.
    :param r: its input.
    """
    w, b = layer.weight, layer.bias
    return (torch.is_grad_enabled() and isinstance(r, Tensor) and type(r.grad_fn) is _Relu._backward_cls
            and not r._backward_hooks and not r.grad_fn.observed
            and not w.requires_grad and (b is None or not b.requires_grad)
            and w.dim() == 2 and w.shape[0] <= MAX_OUT and r.dtype == w.dtype and w.device.type == "cpu"
            and r.is_contiguous() and not torch.compiler.is_compiling())


def observe(t: Tensor) -> None:
    """Mark ``t``, if :func:`relu` made it, as seen by a hook: a hook may keep it and ask for the gradient
    at it, so :func:`relu_linear` does not take it (its gradient there would be the masked one).

    >>> r = relu(torch.randn(2, requires_grad=True))
    >>> observe(r)
    >>> takes(nn.Linear(2, 1).requires_grad_(False), r)
    False

    :param t: an activation a hook point with something attached has seen.
    """
    if type(t.grad_fn) is _Relu._backward_cls:
        t.grad_fn.observed = True


def relu_linear(layer: nn.Linear, r: Float[Tensor, "*rows d_in"]) -> Float[Tensor, "*rows d_out"]:
    """``layer(r)``'s value (bit for bit), whose backward also does the relu's (module docstring). Call it only
    where :func:`takes` is true.

    >>> lin = nn.Linear(3, 2).requires_grad_(False)
    >>> x = torch.randn(5, 3, requires_grad=True)
    >>> r = relu(x)
    >>> torch.equal(relu_linear(lin, r), lin(torch.relu(x)))
    True
    >>> g = torch.randn(5, 2)
    >>> want = torch.autograd.grad(lin(torch.relu(x)), x, g)[0]
    >>> torch.allclose(torch.autograd.grad(relu_linear(lin, r), x, g)[0], want)
    True

    :param layer: the linear layer (its ``weight`` and ``bias`` are read).
    :param r: its input, made by :func:`relu`.
    """
    return _ReluLinear.apply(r, layer.weight, layer.bias, r.grad_fn)
