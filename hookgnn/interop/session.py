"""One forward of a wrapped PyG model: the hooks that route every activation through its hook point.

For the duration of one call, a :class:`Session` registers

* on every ``MessagePassing`` module: a forward pre-hook (``hook_input``: the node
  features the module is called with), PyG's propagate / message / aggregate /
  edge-update hooks (``hook_src`` = the ``x_j`` argument of ``message``, ``hook_message``,
  ``hook_aggregation``, ``hook_update`` = what ``update`` returned, ``hook_edge_update``)
  and a forward hook (``hook_output``);
* on every leaf ``Linear`` and activation module: a forward hook (``hook_out``);

and, as instance attributes, a faster ``forward`` on every exact ``MinAggregation`` /
``MaxAggregation`` (:mod:`hookgnn.interop.aggregation`), ``nn.Linear`` and ``nn.ReLU``
(:mod:`hookgnn.interop.fast_leaves`), each falling back to the module's own where it cannot
give the same numbers, and (once a round propagates over enough edges) the loop of each exact
``nn.Sequential`` with a ``Linear -> ReLU`` pair (:mod:`hookgnn.interop.inplace_relu`); and removes all of them, and restores every attribute it changed, in
``__exit__`` (also when the forward raises). It forces the unfused path (``fuse = False``,
``decomposed_layers = 1``), since PyG's ``message_and_aggregate`` never materialises
messages, and turns off ``inplace`` on activation modules, whose in-place write would
change an activation after a hook has seen it.

An activation that the model edits in place after its hook point saw it (``h += e`` on
a ``Linear``'s output, found by the discovery forward: ``edited``) is handed to the
model as a copy while hooks are attached, so a cache keeps what the hook saw and a
gradient leaf made for it is never edited in place. Any other hooked activation that
the forward edits in place and that is still alive after it raises
:class:`StructureError` (its cached value would be wrong): rediscover.

Every call of a ``MessagePassing`` module's ``forward`` is a *round*; the session
numbers them in call order and keys every activation by ``(round of its module, what)``
(see :mod:`hookgnn.interop.structure` for the names). A leaf module belongs to the
innermost running round whose module contains it; leaves called outside rounds are
keyed by their own call count.
"""

from __future__ import annotations

import contextlib
import functools
import weakref
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn

from hookgnn.hooks import HookPoint
from hookgnn.ops import scatter_plans
from hookgnn.interop.fast_leaves import fast_forward
from hookgnn.interop.inplace_relu import InplaceRelus
from hookgnn.interop.relu_linear import observe
from hookgnn.interop.aggregation import fast_extreme, takes

_PHASE_AXIS = {"message": "edge", "edge_update": "edge", "aggregate": "node", "update": "node"}


class StructureError(RuntimeError):
    """A forward reached an activation that the discovery forward did not see."""


@dataclass
class Frame:
    """One running round: the ``k``-th call of the module at ``path``, round ``t`` overall."""

    path: str
    k: int
    t: int
    module: nn.Module
    hop: int = -1
    phase: str = "forward"
    edge_index: Tensor | None = None
    implicit: bool = False
    calls: dict[str, int] = field(default_factory=dict)


@runtime_checkable
class Recorder(Protocol):
    """What the discovery forward records (see :mod:`hookgnn.interop.structure`)."""

    def round_started(self, frame: Frame) -> None: ...

    def propagating(self, frame: Frame) -> None: ...

    def site(self, key: Hashable, t: Tensor, prefer: str | None, frame: Frame | None,
             linear: nn.Module | None, linear_input: Tensor | None) -> Tensor: ...


class Session:
    """The hooks of one forward (see the module doc); a context manager."""

    def __init__(
        self,
        mp: list[tuple[str, nn.Module]],
        leaves: list[tuple[str, nn.Module, frozenset[str], bool]],
        src_arg: dict[str, str | None],
        points: dict[Hashable, HookPoint] | None,
        recorder: Recorder | None = None,
        edited: frozenset[Hashable] = frozenset(),
    ) -> None:
        self.mp, self.leaves, self.src_arg = mp, leaves, src_arg
        self.points, self.rec, self.edited = points, recorder, edited
        self._watch: list[tuple[Hashable, weakref.ref[Tensor], int]] = []
        self.path_of = {id(m): p for p, m in mp} | {id(m): p for p, m, _, _ in leaves}
        self.ancestors = {id(m): a for _, m, a, _ in leaves}
        self.linear = {id(m) for _, m, _, lin in leaves if lin}
        self.frames: list[Frame] = []
        self.rounds_of: dict[str, int] = {}
        self.free_calls: dict[str, int] = {}
        self.started = 0
        self._handles: list[Any] = []
        self._restore: list[tuple[Any, str, Any]] = []
        self._unset: list[tuple[Any, str]] = []
        self._plans = contextlib.ExitStack()
        self.relus = InplaceRelus()  # relus in place over their linear layer's output (hookgnn.interop.inplace_relu)
        self._own: dict[int, frozenset[int]] = {}  # the session's hook ids on each leaf running its own forward

    # ------------------------------------------------------------ lifecycle
    def __enter__(self) -> Session:
        try:
            self._plans.enter_context(scatter_plans())  # the rounds' min / max share one sort of each index
            for _, m in self.mp:
                self._hook_mp(m)
            own = self._own
            for _, m, _, _ in self.leaves:
                self._handles.append(m.register_forward_hook(self._leaf_post))
                ids = frozenset({self._handles[-1].id})
                if "forward" not in vars(m):  # the module's own forward, or hookgnn's fast one below
                    own[id(m)] = ids
                self._fast_leaf(m, ids)
                if getattr(m, "inplace", False) is True:
                    self._set(m, "inplace", False)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        for h in reversed(self._handles):
            h.remove()
        self._handles.clear()
        for obj, name, old in reversed(self._restore):
            setattr(obj, name, old)
        self._restore.clear()
        for obj, name in reversed(self._unset):
            del vars(obj)[name]
        self._unset.clear()
        self._plans.close()
        watched, self._watch = self._watch, []
        if exc and exc[0] is not None:
            return
        for key, ref, version in watched:
            t = ref()
            if t is not None and t._version != version:
                raise StructureError(
                    f"the model edited {describe(key)} in place after its hook point saw it, which the discovery "
                    "forward did not see, so what the hooks kept (a cache) is no longer the activation; rediscover "
                    "with inputs that run this code: model.discover(*args, **kwargs)"
                )

    def _set(self, obj: Any, name: str, value: Any) -> None:
        self._restore.append((obj, name, getattr(obj, name)))
        setattr(obj, name, value)

    def _hook_mp(self, m: nn.Module) -> None:
        add = self._handles.append
        add(m.register_forward_pre_hook(self._fwd_pre, with_kwargs=True))
        add(m.register_forward_hook(self._fwd_post))
        add(m.register_propagate_forward_pre_hook(self._prop_pre))  # type: ignore[operator]
        add(m.register_message_forward_pre_hook(self._msg_pre))  # type: ignore[operator]
        add(m.register_message_forward_hook(self._msg_post))  # type: ignore[operator]
        add(m.register_aggregate_forward_pre_hook(self._agg_pre))  # type: ignore[operator]
        add(m.register_aggregate_forward_hook(self._agg_post))  # type: ignore[operator]
        add(m.register_propagate_forward_hook(self._prop_post))  # type: ignore[operator]
        if _implements_edge_update(m):
            add(m.register_edge_update_forward_pre_hook(self._edge_pre))  # type: ignore[operator]
            add(m.register_edge_update_forward_hook(self._edge_post))  # type: ignore[operator]
        if getattr(m, "fuse", False):
            self._set(m, "fuse", False)
        if getattr(m, "decomposed_layers", 1) != 1:
            self._set(m, "decomposed_layers", 1)
        self._fast_extreme(getattr(m, "aggr_module", None))

    def _fast_leaf(self, m: nn.Module, own: frozenset[int]) -> None:
        """An exact ``nn.Linear`` / ``nn.ReLU`` gets a faster ``forward`` where no parameter gradient is asked
        for (:mod:`hookgnn.interop.fast_leaves`; ``own``: the id of the session's hook on it); an instance
        attribute, deleted on exit."""
        forward = fast_forward(m, own, self.relus if self.rec is None else None)
        if forward is not None:
            vars(m)["forward"] = forward  # what nn.Module.__setattr__ does for a function, without its checks
            self._unset.append((m, "forward"))

    def _fast_extreme(self, agg: Any) -> None:
        """Route PyG's min / max aggregation through hookgnn's kernel where it gives PyG's values and
        gradients bit for bit (:mod:`hookgnn.interop.aggregation`); an instance attribute, deleted on exit."""
        largest = _extreme_kinds().get(type(agg))  # exact: a subclass may differ
        if largest is None or "forward" in vars(agg):
            return
        original = agg.forward

        def forward(x: Tensor, index: Tensor | None = None, ptr: Tensor | None = None, dim_size: int | None = None,
                    dim: int = -2, **kwargs: Any) -> Tensor:
            if not kwargs and takes(x, index, ptr, dim_size, dim):
                return fast_extreme(x, index, dim_size, largest)  # type: ignore[arg-type]
            return original(x, index, ptr, dim_size, dim, **kwargs)

        vars(agg)["forward"] = forward
        self._unset.append((agg, "forward"))

    # ------------------------------------------------------------- firing
    def fire(self, key: Hashable, t: Tensor, prefer: str | None, frame: Frame | None,
             linear: nn.Module | None = None, linear_input: Tensor | None = None) -> Tensor:
        """Pass ``t`` through the hook point of ``key`` (discovery: record it)."""
        if self.rec is not None:
            return self.rec.site(key, t, prefer, frame, linear, linear_input)
        assert self.points is not None
        hp = self.points.get(key)
        if hp is None:
            raise StructureError(
                f"this forward reached {describe(key)}, which the discovery forward did not run, so it has no hook "
                "point; rediscover with inputs that run every call: model.discover(*args, **kwargs)"
            )
        return self.through(key, hp, t)

    def through(self, key: Hashable, hp: HookPoint, t: Tensor) -> Tensor:
        """``t`` through ``hp`` (skipped when nothing is attached); a copy of the result where the
        model edits it in place (see the module doc), else the result, watched for such edits."""
        if not (hp._fwd or hp._bwd):
            return t
        observe(t)  # a hook may keep it: no relu-fused gradient there (hookgnn.interop.relu_linear)
        out = hp(t)
        if key in self.edited:
            return out.clone()
        self._watch.append((key, weakref.ref(out), out._version))
        return out

    def _frame(self, module: nn.Module) -> Frame | None:
        for frame in reversed(self.frames):
            if frame.module is module:
                return frame
        return None

    def _start(self, module: nn.Module, implicit: bool = False) -> Frame:
        path = self.path_of[id(module)]
        k = self.rounds_of.get(path, 0)
        self.rounds_of[path] = k + 1
        frame = Frame(path, k, self.started, module, implicit=implicit)
        self.started += 1
        self.frames.append(frame)
        if self.rec is not None:
            self.rec.round_started(frame)
        return frame

    # -------------------------------------------------- MessagePassing hooks
    def _fwd_pre(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        frame = self._start(module)
        key = ("round", frame.path, frame.k, 0, "hook_input")
        if args and isinstance(args[0], Tensor):
            new = self.fire(key, args[0], "node", frame)
            return None if new is args[0] else ((new, *args[1:]), kwargs)
        if not args and isinstance(kwargs.get("x"), Tensor):
            new = self.fire(key, kwargs["x"], "node", frame)
            return None if new is kwargs["x"] else (args, {**kwargs, "x": new})
        return None

    def _fwd_post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        frame = self._frame(module)
        if frame is None:
            return None
        while self.frames and self.frames[-1] is not frame:
            self.frames.pop()
        self.frames.pop()
        key = ("round", frame.path, frame.k, 0, "hook_output")
        if isinstance(output, Tensor):
            new = self.fire(key, output, "node", frame)
            return None if new is output else new
        if isinstance(output, tuple) and output and isinstance(output[0], Tensor):
            new = self.fire(key, output[0], "node", frame)
            return None if new is output[0] else (new, *output[1:])
        return None

    def _round_key(self, frame: Frame, what: str) -> tuple[Any, ...]:
        return ("round", frame.path, frame.k, max(frame.hop, 0), what)

    def _prop_pre(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        frame = self._frame(module) or self._start(module, implicit=True)
        frame.hop += 1
        frame.phase = "propagate"
        ei = inputs[0]
        frame.edge_index = ei if isinstance(ei, Tensor) and ei.dim() == 2 and not ei.is_floating_point() else None
        if self.rec is None and frame.edge_index is not None:  # the module's MLPs run after this: their relus
            self.relus.install(module, frame.edge_index.shape[1], self._own, self._unset)
        if self.rec is not None:
            self.rec.propagating(frame)

    def _msg_pre(self, module: nn.Module, inputs: tuple[Any, ...]) -> Any:
        frame = self._frame(module)
        assert frame is not None
        frame.phase = "message"
        kwargs = inputs[0]
        name = self.src_arg.get(frame.path)
        value = kwargs.get(name) if name else None
        if not isinstance(value, Tensor):
            return None
        new = self.fire(self._round_key(frame, "hook_src"), value, "edge", frame)
        return None if new is value else ({**kwargs, name: new},)

    def _msg_post(self, module: nn.Module, inputs: tuple[Any, ...], out: Any) -> Any:
        return self._post(module, out, "hook_message", "edge", "between")

    def _agg_pre(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        frame = self._frame(module)
        if frame is not None:
            frame.phase = "aggregate"

    def _agg_post(self, module: nn.Module, inputs: tuple[Any, ...], out: Any) -> Any:
        return self._post(module, out, "hook_aggregation", "node", "update")

    def _prop_post(self, module: nn.Module, inputs: tuple[Any, ...], out: Any) -> Any:
        new = self._post(module, out, "hook_update", "node", "forward")
        frame = self._frame(module)
        if frame is not None and frame.implicit:
            self.frames.remove(frame)
        return new

    def _edge_pre(self, module: nn.Module, inputs: tuple[Any, ...]) -> None:
        frame = self._frame(module)
        if frame is not None:
            frame.phase = "edge_update"

    def _edge_post(self, module: nn.Module, inputs: tuple[Any, ...], out: Any) -> Any:
        return self._post(module, out, "hook_edge_update", "edge", "forward")

    def _post(self, module: nn.Module, out: Any, what: str, axis: str, phase: str) -> Any:
        frame = self._frame(module)
        if frame is None or not isinstance(out, Tensor):
            return None
        frame.phase = phase
        new = self.fire(self._round_key(frame, what), out, axis, frame)
        return None if new is out else new

    # ---------------------------------------------------------- leaf hooks
    def _leaf_post(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        if not isinstance(output, Tensor):
            return None
        path, inside = self.path_of[id(module)], self.ancestors[id(module)]
        frame = next((f for f in reversed(self.frames) if f.path in inside), None)
        if frame is not None:
            j = frame.calls.get(path, 0)
            frame.calls[path] = j + 1
            key: tuple[Any, ...] = ("leaf", frame.path, frame.k, path, j)
            prefer = _PHASE_AXIS.get(frame.phase)
        else:
            j = self.free_calls.get(path, 0)
            self.free_calls[path] = j + 1
            key, prefer = ("free", path, j), None
        is_linear = id(module) in self.linear
        x = args[0] if args and isinstance(args[0], Tensor) else None
        new = self.fire(key, output, prefer, frame, module if is_linear else None, x if is_linear else None)
        if id(module) in self.relus.feeds:
            self.relus.linear_done(module, new, self.points.get(key))  # type: ignore[union-attr]
        return None if new is output else new


@functools.cache
def _extreme_kinds() -> dict[type, bool]:
    """PyG's exact min / max aggregation classes -> ``largest`` (imported once, not at every call)."""
    from torch_geometric.nn.aggr import MaxAggregation, MinAggregation

    return {MinAggregation: False, MaxAggregation: True}


def _implements_edge_update(m: nn.Module) -> bool:
    from torch_geometric.nn import MessagePassing

    return getattr(type(m), "edge_update", None) is not MessagePassing.edge_update


def describe(key: Hashable) -> str:
    """A key in words, for error messages.

    >>> describe(("round", "convs.1", 2, 0, "hook_message"))
    'hook_message of call 2 of convs.1'
    """
    kind = key[0]  # type: ignore[index]
    if kind == "round":
        _, path, k, hop, what = key  # type: ignore[misc]
        return f"{what} of call {k} of {path or 'the model'}" + (f" (propagate {hop})" if hop else "")
    if kind == "leaf":
        _, path, k, leaf, j = key  # type: ignore[misc]
        return f"call {j} of {leaf} inside call {k} of {path or 'the model'}"
    if kind == "free":
        return f"call {key[2]} of {key[1]}"  # type: ignore[index]
    return f"the input {key[1]!r}"  # type: ignore[index]

