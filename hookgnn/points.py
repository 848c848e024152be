"""Hook points: identity modules that mark where an activation is made (see :mod:`hookgnn.hooks`).

:class:`HookPoint` is re-exported by :mod:`hookgnn.hooks`, its public home; this module
holds it, its handles and hook types, below the root module that names hook points.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Union, runtime_checkable

import torch
from torch import Tensor, nn

Direction = Literal["fwd", "bwd"]
Axis = Literal["node", "edge", "graph", "triplet", "none"]
#: Axes whose rows belong to a graph of the batch: node, edge and graph. ``triplet``
#: rows are 2-paths (u -> k -> v) of one graph; ``none`` is an activation without such
#: a first axis (e.g. a weight).
AXES: tuple[Axis, ...] = ("node", "edge", "graph", "triplet", "none")


@runtime_checkable
class HookFn(Protocol):
    """The signature of a hook: the activation (or its gradient) and the hook point."""

    def __call__(self, tensor: Tensor, *, hook: HookPoint) -> Tensor | None: ...


NameFilter = Union[str, Sequence[str], Callable[[str], bool], None]
HookSpec = tuple[Union[str, Callable[[str], bool]], HookFn]


class HookError(ValueError):
    """A hook returned something that cannot replace the activation."""


@dataclass(frozen=True)
class RowSpan:
    """Which rows of an activation one call of a hook point carries: rows ``start:stop`` of a
    tensor of ``rows`` rows (:attr:`HookPoint.span`; only :func:`row_local` hooks are called on
    part of an activation).

    >>> RowSpan(4, 6, 10).stop - RowSpan(4, 6, 10).start
    2

    :param start: the first row of the block.
    :param stop: one past its last row.
    :param rows: the rows of the whole activation.
    """

    start: int
    stop: int
    rows: int


@dataclass(eq=False)
class _Entry:
    fn: HookFn
    permanent: bool


@dataclass(eq=False)
class HookHandle:
    """Returned by ``add_hook``; ``remove()`` detaches exactly the hooks it added."""

    _entries: list[tuple[list[_Entry], _Entry]] = field(default_factory=list)

    def remove(self) -> None:
        """Detach the hooks this handle added (again: no effect)."""
        for registry, entry in self._entries:
            if entry in registry:
                registry.remove(entry)
        self._entries.clear()

    def __enter__(self) -> HookHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


class HookPoint(nn.Module):
    """An identity module marking a named activation; hooks attach here.

    ``axis`` tells what the first dimension of the activation indexes: ``"node"``,
    ``"edge"``, ``"graph"``, ``"triplet"`` or ``"none"``.

    >>> hp = HookPoint(axis="edge")
    >>> handle = hp.add_hook(lambda t, hook: t * 2)
    >>> hp(torch.ones(2)).tolist()
    [2.0, 2.0]
    >>> handle.remove(); hp(torch.ones(2)).tolist()
    [1.0, 1.0]
    >>> def triple(t, hook):  # edits in place, returns None: the same as returning the copy
    ...     t.mul_(3)
    >>> x = torch.ones(2)
    >>> with hp.add_hook(triple):
    ...     hp(x).tolist(), x.tolist()
    ([3.0, 3.0], [1.0, 1.0])

    :param axis: what the first dimension of the activation indexes: ``"node"``, ``"edge"``, ``"graph"``,
        ``"triplet"`` or ``"none"``.
    """

    def __init__(self, axis: Axis = "node") -> None:
        super().__init__()
        if axis not in AXES:
            raise ValueError(f"unknown hook axis {axis!r}; expected one of {AXES}")
        self.axis: Axis = axis
        self.name: str = "<unnamed hook point>"
        self._fwd: list[_Entry] = []
        self._bwd: list[_Entry] = []
        #: The rows of the activation the current call carries (:class:`RowSpan`); ``None``: all of it.
        self.span: RowSpan | None = None

    def registry(self, dir: Direction) -> list[_Entry]:
        """The list of hooks of one direction (``"fwd"`` or ``"bwd"``)."""
        if dir == "fwd":
            return self._fwd
        if dir == "bwd":
            return self._bwd
        raise ValueError(f"hook direction must be 'fwd' or 'bwd', got {dir!r}")

    def add_hook(
        self, fn: HookFn, dir: Direction = "fwd", is_permanent: bool = False, prepend: bool = False
    ) -> HookHandle:
        """Attach ``fn``; returns a handle whose ``remove()`` detaches it."""
        if not callable(fn):
            raise TypeError(f"hook for {self.name} must be callable, got {type(fn).__name__}")
        registry = self.registry(dir)
        entry = _Entry(fn, is_permanent)
        registry.insert(0, entry) if prepend else registry.append(entry)
        return HookHandle([(registry, entry)])

    def remove_hooks(self, dir: Direction | Literal["both"] = "both", including_permanent: bool = False) -> None:
        """Remove this point's hooks of a direction (or both), keeping permanent ones unless asked."""
        for d in ("fwd", "bwd") if dir == "both" else (dir,):
            registry = self.registry(d)
            registry[:] = [e for e in registry if e.permanent and not including_permanent]

    @property
    def has_hooks(self) -> bool:
        """Whether any forward or backward hook is attached."""
        return bool(self._fwd or self._bwd)

    @property
    def hooks_row_local(self) -> bool:
        """Whether every hook attached (forward and backward) is :func:`row_local`, so that the
        activation may go through this point a block of rows at a time (true with no hooks)."""
        return all(getattr(e.fn, "row_local", False) for e in (*self._fwd, *self._bwd))

    def forward(self, x: Tensor, span: RowSpan | None = None) -> Tensor:
        """Return ``x``, or what the forward hooks make of it; attach backward hooks to it.

        ``span``: ``x`` is rows ``span.start:span.stop`` of a larger activation, which goes through
        this point in such blocks, each row exactly once (e.g. a message MLP in edge chunks,
        :mod:`hookgnn.nn.chunking`); only :func:`row_local` hooks may be attached then (else
        :class:`HookError`), and they read the span as ``hook.span`` (``None`` for a whole activation).
        """
        if not (self._fwd or self._bwd):
            return x
        if span is None:
            return self._hooked(x, None)
        if not self.hooks_row_local:
            bad = next(e.fn for e in (*self._fwd, *self._bwd) if not getattr(e.fn, "row_local", False))
            raise HookError(f"{self.name} was called on rows {span.start}:{span.stop} of {span.rows}, but its hook "
                            f"{getattr(bad, '__name__', type(bad).__name__)} is not marked row_local (only hooks that "
                            "act on each row on its own may see part of an activation)")
        if x.dim() == 0 or x.shape[0] != span.stop - span.start or not 0 <= span.start <= span.stop <= span.rows:
            raise HookError(f"{self.name} was called on rows {span.start}:{span.stop} of {span.rows} with a "
                            f"tensor of shape {tuple(x.shape)}: the span must lie in the rows and match the first axis")
        return self._hooked(x, span)

    def _hooked(self, x: Tensor, span: RowSpan | None) -> Tensor:
        before, self.span = self.span, span
        try:
            for entry in tuple(self._fwd):
                x = self._run(entry.fn, x, "forward")
        finally:
            self.span = before
        if self._bwd:
            if not x.requires_grad:
                raise HookError(
                    f"backward hook on {self.name} can never fire: the activation does not require grad "
                    "(running under torch.no_grad(), or with frozen parameters and inputs?)"
                )
            # Tensor hooks live on the autograd graph of this very run, so they fire at a
            # later .backward() even after the hook-point registration is gone.
            for entry in tuple(self._bwd):
                x.register_hook(_GradHook(entry.fn, self, span))
        return x

    def _run(self, fn: HookFn, x: Tensor, what: str) -> Tensor:
        """``fn`` on a private copy of ``x``: what it returns, else the copy as it left it.

        The copy is what makes an in-place edit equal to returning the edited copy: the
        hook never writes to a tensor that other code (or autograd) also holds, and the
        copy's autograd node (``CloneBackward``) saves nothing, so any in-place edit of it
        is allowed. Its values and gradient are those of ``x`` bit for bit. A hook marked
        :func:`read_only` gets ``x`` itself (no copy), and raises if it edits it in place.
        """
        if getattr(fn, "read_only", False):
            version = x._version
            out = fn(x, hook=self)
            if x._version != version:
                raise HookError(f"{what} hook on {self.name} is marked read_only but edited its activation in place")
            return x if out is None else self._checked(out, x, what)
        mine = x.clone()
        out = fn(mine, hook=self)
        if out is None:
            return self._checked(mine, x, what, edited=True)
        return self._checked(out, x, what)

    def _checked(self, out: Any, x: Tensor, what: str, edited: bool = False) -> Tensor:
        if not isinstance(out, Tensor):
            raise HookError(f"{what} hook on {self.name} returned {type(out).__name__}, expected a Tensor or None")
        did = "left its tensor (edited in place) with" if edited else "returned"
        fix = ("; an in-place edit must keep the activation's shape, dtype and device: to replace it, return a "
               "tensor like it instead") if edited else ""
        if out.shape != x.shape:
            raise HookError(
                f"{what} hook on {self.name} {did} shape {tuple(out.shape)}, "
                f"but the activation has shape {tuple(x.shape)}{fix}"
            )
        if out.dtype != x.dtype:
            raise HookError(
                f"{what} hook on {self.name} {did} dtype {out.dtype}, but the activation has dtype {x.dtype} "
                f"(cast with .to(act.dtype)){fix}"
            )
        if out.device != x.device:
            raise HookError(
                f"{what} hook on {self.name} {did} a tensor on {out.device}, but the activation is on {x.device}{fix}"
            )
        return out

    def extra_repr(self) -> str:
        return f"name={self.name!r}, axis={self.axis!r}"


def read_only(fn: Any) -> Any:
    """Mark a hook that never edits its activation in place: it gets the activation itself, not
    a private copy (the copy of every large activation is measurable time in a streamed backward).
    An in-place edit by a marked hook raises :class:`HookError`. Returns ``fn``.

    >>> seen = read_only(lambda act, hook: None)
    >>> seen.read_only
    True
    """
    fn.read_only = True
    return fn


def transient(fn: Any) -> Any:
    """Mark a hook that is :func:`read_only` and also keeps nothing of its activation past the call (no
    reference to it, a view of it or its storage: only tensors it makes) and returns it or an identity view
    of it: the forward may then reuse the activation's memory once the next module has read it (a wrapped
    PyG model's relu after a linear layer, :mod:`hookgnn.interop.inplace_relu`). Returns ``fn``.

    >>> seen = transient(lambda act, hook: None)
    >>> seen.read_only, seen.transient
    (True, True)
    """
    fn.read_only = fn.transient = True
    return fn


def row_local(fn: Any) -> Any:
    """Mark a hook that acts on each row of its activation on its own (what it does to, or reads
    from, row ``r`` depends on row ``r`` only, and on ``hook.span`` to tell which row that is): it
    may then be called on a block of rows at a time, each row exactly once, with
    :attr:`HookPoint.span` saying which (``None``: the whole activation). Where every hook on a
    message MLP's hidden hook points is marked, the MLP keeps its edge chunks
    (:mod:`hookgnn.nn.chunking`); any unmarked hook there gets the whole activation, as always.
    Returns ``fn``.

    >>> spans = []
    >>> hp = HookPoint(axis="edge")
    >>> with hp.add_hook(row_local(lambda act, hook: spans.append(hook.span))):
    ...     _ = hp(torch.ones(2, 3), span=RowSpan(4, 6, 10)); _ = hp(torch.ones(10, 3))
    >>> spans
    [RowSpan(start=4, stop=6, rows=10), None]

    :param fn: the hook (a :class:`HookFn`).
    """
    fn.row_local = True
    return fn


class _GradHook:
    def __init__(self, fn: HookFn, point: HookPoint, span: RowSpan | None) -> None:
        self.fn, self.point, self.span = fn, point, span

    def __call__(self, grad: Tensor) -> Tensor | None:
        # A private copy here too: autograd may hand one gradient tensor to several
        # places (the backward of a sum passes it to both terms).
        before, self.point.span = self.point.span, self.span  # the rows of the forward call that attached it
        try:
            return self.point._run(self.fn, grad, "backward")
        finally:
            self.point.span = before
