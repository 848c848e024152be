"""Tracing which hooked neuron feeds which: the data flow between hook points of one forward.

While a wrapped model runs its first (discovery) forward, a
:class:`~torch.overrides.TorchFunctionMode` records the few torch operations that pass
neurons through unchanged or elementwise:

* concatenation along the feature axis (``torch.cat([x_j, e_ij], -1)``): column blocks;
* row gathers by a row of the round's ``edge_index`` (``x.index_select(0, edge_index[0])``,
  ``x[edge_index[1]]``): a node row read by edge ``u -> v`` at ``u`` (``"src"``) or ``v`` (``"dst"``);
* one elementwise activation (``relu``, ``sigmoid``, ``tanh``, ``leaky_relu``, ``gelu``, ...);
* operations that keep every value (``clone``, ``contiguous``, ``dropout`` in eval mode,
  adding a bias ``Parameter``).

Everything else (a ``Linear``, a sum of two activations, a normalisation, attention) is
a barrier, and so is a hooked tensor that the model edited in place after its hook
point saw it (``h += e``: its value is no longer the hook's). The tracer also records
which hooked tensors are edited in place (:attr:`Tracer.edited`: the wrapped model hands
the model a copy there, so hooks keep what they saw) and which watched tensors (the
model's inputs) any operation reads (:attr:`Tracer.read`). When a hook point fires, :func:`sources` walks back from its tensor (for a
``Linear``'s output hook: from the ``Linear``'s input) through recorded operations to
the nearest hooked tensors and returns, per column block, which hook and column it
came from, with which row map and activation. Recorded operations keep their inputs
alive only as long as their output lives (weak-reference finalizers drop the entry),
so the discovery forward does not hold on to the model's intermediate tensors.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

Rows = str  # "same" | "src" | "dst"

_RELU = {F.relu, torch.relu, Tensor.relu}
_ELEMENTWISE: set[Callable[..., Any]] = {
    torch.sigmoid, Tensor.sigmoid, F.sigmoid, torch.tanh, Tensor.tanh, F.tanh, F.leaky_relu, F.elu, F.gelu,
    F.silu, F.softplus, F.relu6, F.hardtanh, F.mish, F.selu, F.celu, F.hardswish, F.hardsigmoid, F.softsign,
}
_CAT = {torch.cat, torch.concat, torch.concatenate}
_GATHER = {torch.index_select, Tensor.index_select}
_SAME = {Tensor.clone, Tensor.contiguous, Tensor.to, Tensor.float, Tensor.double, Tensor.view, Tensor.reshape,
         torch.reshape, Tensor.type_as}
_ADD = {torch.add, Tensor.add, Tensor.__add__, Tensor.__radd__}
_SUB = {torch.sub, Tensor.sub, Tensor.__sub__}


class Elementwise:
    """An elementwise activation recorded from a call: ``fn(z, *args, **kwargs)``.

    >>> Elementwise(F.leaky_relu, (0.5,), {})(torch.tensor([-2.0, 2.0])).tolist()
    [-1.0, 2.0]
    """

    def __init__(self, fn: Callable[..., Tensor], args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.fn, self.args, self.kwargs = fn, args, {k: v for k, v in kwargs.items() if k != "inplace"}

    def __call__(self, z: Tensor) -> Tensor:
        return self.fn(z, *self.args, **self.kwargs)

    def __repr__(self) -> str:
        extra = ", ".join([repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()])
        return f"{getattr(self.fn, '__name__', self.fn)}({extra})" if extra else getattr(self.fn, "__name__", repr(self.fn))


@dataclass(frozen=True)
class Segment:
    """Columns ``[start, stop)`` of a traced tensor come from columns
    ``[src_start, src_start + stop - start)`` of hook ``key`` (width ``src_width``),
    rows mapped by ``rows``, through ``act`` (``None``: unchanged)."""

    start: int
    stop: int
    key: Hashable
    src_start: int
    src_width: int
    rows: Rows
    act: Any = None


@dataclass
class _Op:
    kind: str
    inputs: tuple[Any, ...]
    extra: Any = None
    version: int = 0  # of the output when made: a later in-place edit makes the op a barrier


class Tracer(TorchFunctionMode):
    """Record traversable operations and hooked tensors during one forward (see the module doc)."""

    def __init__(self) -> None:
        super().__init__()
        self.producer: dict[int, _Op] = {}
        self.hooked: dict[int, list[Hashable]] = {}
        self.versions: dict[int, int] = {}
        self.widths: dict[Hashable, int] = {}
        self.edited: set[Hashable] = set()
        self.watched: dict[int, Hashable] = {}
        self.read: set[Hashable] = set()
        self.quiet = False

    # ------------------------------------------------------------- recording
    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if self.quiet:
            return func(*args, **kwargs)
        if self.watched:
            self._note_reads(args, kwargs)
        first = args[0] if args and isinstance(args[0], Tensor) else None
        keys = self._hooked_keys(first)
        before = first._version if keys else None  # type: ignore[union-attr]
        out = func(*args, **kwargs)
        if keys and first._version != before:  # type: ignore[union-attr]
            self.edited.update(keys)
        if isinstance(out, Tensor) and not any(a is out for a in args):
            op = _classify(func, args, kwargs, out)
            if op is not None:
                op.version = out._version
                self._remember(self.producer, out, op)
        return out

    def _hooked_keys(self, t: Tensor | None) -> list[Hashable]:
        """Hook keys of ``t`` and of the tensor ``t`` is a view of."""
        if t is None or not self.hooked:
            return []
        base = t._base
        return self.hooked.get(id(t), []) + ([] if base is None else self.hooked.get(id(base), []))

    def _note_reads(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        for a in (*args, *kwargs.values()):
            for t in (a if isinstance(a, (list, tuple)) else (a,)):
                if isinstance(t, Tensor):
                    for u in (t, t._base):  # an alias (a round's hook_input) reads its base
                        if u is not None and id(u) in self.watched:
                            self.read.add(self.watched[id(u)])

    def watch(self, key: Hashable, t: Tensor) -> None:
        """Record in :attr:`read` whether any operation of the forward takes ``t`` (an input)."""
        self.watched[id(t)] = key

    def _remember(self, table: dict[int, Any], t: Tensor, value: Any) -> None:
        key = id(t)
        if key not in table:
            weakref.finalize(t, table.pop, key, None)
        table[key] = value

    def mark(self, key: Hashable, t: Tensor) -> None:
        """``t`` is the activation of hook ``key`` (called after the key's sources were traced)."""
        if id(t) not in self.hooked:
            weakref.finalize(t, self.hooked.pop, id(t), None)
            self.hooked[id(t)] = []
        self.hooked[id(t)].append(key)
        self.versions[id(t)] = t._version
        if t.dim() == 2:
            self.widths[key] = t.shape[1]

    # ------------------------------------------------------------- walking
    def sources(self, t: Tensor, edge_index: Tensor | None) -> list[Segment]:
        """Column blocks of ``t`` traced back to hooked tensors (blocks not traced are left out)."""
        return self._walk(t, "same", None, edge_index)

    def _walk(self, t: Any, rows: Rows, act: Any, edge_index: Tensor | None) -> list[Segment]:
        if not isinstance(t, Tensor) or t.dim() != 2:
            return []
        keys = self.hooked.get(id(t))
        if keys:
            if t._version != self.versions.get(id(t)):  # edited in place since its hook saw it
                return []
            return [Segment(0, t.shape[1], keys[-1], 0, t.shape[1], rows, act)]
        op = self.producer.get(id(t))
        if op is None or op.version != t._version:
            return []
        if op.kind == "same":
            return self._walk(op.inputs[0], rows, act, edge_index)
        if op.kind == "act":
            return [] if act is not None else self._walk(op.inputs[0], rows, op.extra, edge_index)
        if op.kind == "gather":
            cls = _row_map(op.extra, edge_index)
            return [] if rows != "same" or cls is None else self._walk(op.inputs[0], cls, act, edge_index)
        if op.kind == "cat":
            out, offset = [], 0
            for part in op.inputs:
                if not isinstance(part, Tensor) or part.dim() != 2:
                    return []
                out += [_shift(s, offset) for s in self._walk(part, rows, act, edge_index)]
                offset += part.shape[1]
            return out
        return []


def _shift(s: Segment, offset: int) -> Segment:
    return Segment(s.start + offset, s.stop + offset, s.key, s.src_start, s.src_width, s.rows, s.act)


def _row_map(index: Tensor, edge_index: Tensor | None) -> Rows | None:
    if edge_index is None or not isinstance(edge_index, Tensor) or edge_index.dim() != 2:
        return None
    for name, row in (("src", edge_index[0]), ("dst", edge_index[1])):
        if index.shape == row.shape and torch.equal(index, row):
            return name
    return None


def _is_bias(t: Any) -> bool:
    """A constant added to an activation: a number, a ``Parameter`` or a 0-d tensor (a bias, not a neuron)."""
    return isinstance(t, (int, float, torch.nn.Parameter)) or (isinstance(t, Tensor) and t.dim() == 0)


def _classify(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], out: Tensor) -> _Op | None:
    """The traversable operation ``func`` performed, or ``None`` for a barrier."""
    try:
        if func in _RELU:
            return _Op("act", (args[0],), "relu")
        if func in _ELEMENTWISE:
            return _Op("act", (args[0],), Elementwise(func, tuple(args[1:]), kwargs))
        if func in _CAT:
            tensors = args[0] if args else kwargs["tensors"]
            dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
            return _Op("cat", tuple(tensors)) if out.dim() == 2 and dim % 2 == 1 else None
        if func in _GATHER:
            src, dim, index = args[0], kwargs.get("dim", args[1]), kwargs.get("index", args[2] if len(args) > 2 else None)
            return _Op("gather", (src,), index) if src.dim() == 2 and dim % 2 == 0 else None
        if func is Tensor.__getitem__:
            src, index = args
            if isinstance(index, Tensor) and index.dim() == 1 and not index.is_floating_point() and index.dtype != torch.bool:
                return _Op("gather", (src,), index)
            return None
        if func in _SAME:
            return _Op("same", (args[0],)) if isinstance(args[0], Tensor) and out.shape == args[0].shape else None
        if func is F.dropout:
            p = kwargs.get("p", args[1] if len(args) > 1 else 0.5)
            training = kwargs.get("training", args[2] if len(args) > 2 else True)
            return _Op("same", (args[0],)) if (p == 0 or not training) else None
        if (func in _ADD or func in _SUB) and len(args) >= 2 and "alpha" not in kwargs:
            a, b = args[0], args[1]
            if isinstance(a, Tensor) and _is_bias(b) and out.shape == a.shape:
                return _Op("same", (a,))
            if func in _ADD and isinstance(b, Tensor) and _is_bias(a) and out.shape == b.shape:
                return _Op("same", (b,))
    except (IndexError, KeyError, TypeError, AttributeError):
        return None
    return None
