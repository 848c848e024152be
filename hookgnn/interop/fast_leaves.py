"""The faster ``forward`` a wrapped model's exact ``nn.Linear`` and ``nn.ReLU`` modules get for one call.

:class:`~hookgnn.interop.session.Session` sets what :func:`fast_forward` returns as the module's
instance attribute ``forward`` for the duration of one wrapped call and deletes it on exit. Each
serves a call only where it gives the module's own values bit for bit and autograd's gradients up to
float rounding, and falls back to the module's own ``forward`` elsewhere:

* ``nn.Linear`` with frozen parameters: fed by :func:`hookgnn.interop.relu_linear.relu`, the relu's
  backward fused into its input gradient (:mod:`hookgnn.interop.relu_linear`); with a narrow input,
  its input gradient in BLAS's fast layout (:mod:`hookgnn.interop.frozen_linear`);
* ``nn.ReLU``: :func:`hookgnn.interop.relu_linear.relu` on large inputs that need a gradient; in place (``relu_``,
  or torch's own ``torch.relu_`` where no gradient flows) where the session's
  :class:`~hookgnn.interop.inplace_relu.InplaceRelus` grants it the input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules import module as torch_module

from hookgnn.interop import frozen_linear as fl
from hookgnn.interop import relu_linear as rl


def _frozen(layer: nn.Linear) -> bool:
    w, b = layer.weight, layer.bias
    return not w.requires_grad and (b is None or not b.requires_grad) and w.dim() == 2


def outside_hooks(module: nn.Module, own: frozenset[int] = frozenset()) -> bool:
    """Whether a forward (pre-)hook other than the ids in ``own`` (the session's) sees ``module``'s input or
    output, on the module or globally: such a hook may keep the relu's output and ask autograd for the gradient
    at it, which the fused path would give masked.

    >>> relu = nn.ReLU()
    >>> before = outside_hooks(relu)
    >>> handle = relu.register_forward_hook(lambda m, i, o: None)
    >>> before, outside_hooks(relu), outside_hooks(relu, frozenset({handle.id}))
    (False, True, False)

    :param module: a leaf module of the wrapped model.
    :param own: ids of the hooks hookgnn itself put on it (``RemovableHandle.id``).
    """
    return (any(k not in own for k in module._forward_hooks) or bool(module._forward_pre_hooks)
            or bool(torch_module._global_forward_hooks) or bool(torch_module._global_forward_pre_hooks))


def fast_forward(module: nn.Module, own: frozenset[int] = frozenset(),
                 sole: Any = None) -> Callable[[Tensor], Tensor] | None:
    """The faster ``forward`` of ``module`` (module docstring), or ``None`` where it has none: not an exact
    ``nn.Linear`` / ``nn.ReLU`` (a subclass may differ), a layer whose parameters need a gradient, or
    one with an instance ``forward`` already.

    >>> lin = nn.Linear(64, 8).requires_grad_(False)
    >>> x = torch.randn(3, 64)
    >>> torch.equal(fast_forward(lin)(x), lin(x)), fast_forward(nn.Linear(64, 8)) is None
    (True, True)

    :param module: a leaf module of the wrapped model.
    :param own: ids of the forward hooks hookgnn itself put on it; any other hook on the relu or the layer after it
        keeps the fused relu backward off (:func:`outside_hooks`).
    :param sole: for a relu, the session's :class:`~hookgnn.interop.inplace_relu.InplaceRelus` (or ``None``): a
        call on the tensor its ``grant`` names runs in place (:func:`hookgnn.interop.relu_linear.relu_`).
    """
    if "forward" in vars(module):
        return None
    original = module.forward
    if type(module) is nn.ReLU:
        def relu_forward(x: Tensor) -> Tensor:
            granted = sole is not None and sole.grant is x
            if rl.takes_relu(x):
                if outside_hooks(module, own):
                    return original(x)
                return rl.relu_(x) if granted else rl.relu(x)
            if granted and rl.takes_plain_inplace(x) and not outside_hooks(module, own):
                return torch.relu_(x)  # no gradient through it: torch's own in-place relu
            return original(x)
        return relu_forward
    if type(module) is not nn.Linear or not _frozen(module):
        return None
    narrow, fused = fl.frozen_and_narrow(module), module.weight.shape[0] <= rl.MAX_OUT
    if not (narrow or fused):
        return None

    def linear_forward(x: Tensor) -> Tensor:
        if fused and rl.takes(module, x) and not outside_hooks(module, own):
            return rl.relu_linear(module, x)
        return fl.frozen_linear(module, x) if narrow and fl.takes(module, x) else original(x)

    return linear_forward
