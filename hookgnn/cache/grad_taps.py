"""Gradients delivered hook by hook as one backward pass reaches them, never all held at once.

``torch.autograd.grad(metric, [a_1, ..., a_H])`` returns every gradient together, so a
run that wants :math:`\\partial m / \\partial a_h` at every hook point holds all of them
(as much memory as the activations) at the end. A *tap* instead wraps activation
:math:`a_h` in an identity node whose backward hands the gradient that reached it to a
callback, which may reduce it (a product with a difference, a row sum) or write it to
disk, and drop it. Every tap also takes a shared scalar *sink*; one
``torch.autograd.grad(metric, sink)`` then makes the engine run exactly the nodes
between the metric and the taps (nothing upstream of the earliest tap, no parameter
gradients) and the sink's gradient is 0.

:func:`frozen_parameters` turns off ``requires_grad`` on a model's parameters for the
duration of a ``with`` block: gradients with respect to activations are the same, but
autograd no longer saves the inputs of each linear layer for its weight gradient, which
is most of what a forward with grad holds (see ``benchmarks/bench_scaling.py``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

GradFn = Callable[[Tensor], None]


@contextmanager
def frozen_parameters(module: nn.Module) -> Iterator[nn.Module]:
    """Set ``requires_grad=False`` on every parameter of ``module`` inside the block, restoring it after.

    >>> lin = nn.Linear(2, 2)
    >>> with frozen_parameters(lin):
    ...     lin.weight.requires_grad
    False
    >>> lin.weight.requires_grad
    True
    """
    changed = [p for p in module.parameters() if p.requires_grad]
    try:
        for p in changed:
            p.requires_grad_(False)
        yield module
    finally:
        for p in changed:
            p.requires_grad_(True)


class _Tap(torch.autograd.Function):
    """Identity on ``act``; its backward calls ``fn(grad)`` and passes ``grad`` on."""

    @staticmethod
    def forward(ctx: Any, act: Tensor, sink: Tensor, fn: GradFn) -> Tensor:  # type: ignore[override]
        ctx.fn = fn
        return act.view_as(act)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:  # type: ignore[override]
        ctx.fn(grad)
        ctx.fn = None  # free what the callback holds (e.g. a difference) as soon as it has run
        return grad, grad.new_zeros(()), None


class GradientTaps:
    """Taps for one forward and one backward (see the module docstring).

    >>> taps = GradientTaps()
    >>> x = torch.tensor([1.0, 2.0])
    >>> seen = []
    >>> y = taps.tap(x, seen.append)          # a fresh leaf: x did not require grad
    >>> taps.backward((y ** 2).sum())
    >>> seen[0].tolist()
    [2.0, 4.0]
    """

    def __init__(self) -> None:
        self.sink = torch.zeros((), requires_grad=True)
        self.count = 0

    def tap(self, act: Tensor, fn: GradFn) -> Tensor:
        """``act`` wrapped so that ``fn(d metric / d act)`` runs during :meth:`backward`.

        An activation that does not require grad (nothing before it does) becomes a
        fresh leaf first, which cuts no path. Returns the tensor to use in its place.
        """
        if not torch.is_grad_enabled():
            raise RuntimeError("a gradient tap needs grad mode on (it was called under torch.no_grad())")
        if not act.requires_grad:
            act = act.detach().requires_grad_()
        self.count += 1
        return _Tap.apply(act, self.sink.to(act.dtype) if act.dtype.is_floating_point else self.sink, fn)

    def backward(self, metric: Tensor) -> None:
        """Run the backward of the scalar ``metric`` through every tap it depends on.

        A tap whose activation the metric does not depend on never calls its ``fn``;
        a metric that depends on no tap at all is a ``ValueError``.
        """
        if not isinstance(metric, Tensor) or metric.numel() != 1:
            shape = tuple(metric.shape) if isinstance(metric, Tensor) else type(metric).__name__
            raise ValueError(f"the metric must be a scalar tensor, got {shape}")
        if not metric.requires_grad:
            raise ValueError("the metric does not depend on any tapped activation (it does not require grad)")
        before = getattr(_single, "on", False)
        _single.on = True  # no retain_graph: a node may reuse what it saved (see single_backward)
        try:
            torch.autograd.grad(metric.reshape(()), [self.sink], allow_unused=True)
        finally:
            _single.on = before


_single = threading.local()


def single_backward() -> bool:
    """Whether this thread is inside :meth:`GradientTaps.backward`: a backward without ``retain_graph`` or
    ``create_graph``, the only one its graph gets, so an autograd node there may overwrite a tensor it saved
    once it has read it, where no other node reads that tensor (on the CPU the engine runs a backward on the
    calling thread; elsewhere this reads ``False``, and nothing is overwritten).

    >>> single_backward()
    False
    >>> taps, seen = GradientTaps(), []
    >>> y = taps.tap(torch.ones(2), lambda g: seen.append(single_backward()))
    >>> taps.backward(y.sum()); seen
    [True]
    """
    return bool(getattr(_single, "on", False))
