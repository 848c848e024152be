"""Hook points and the root module that names them, with the TransformerLens API.

A :class:`HookPoint` is an identity module placed where an activation is made::

    msg = self.hook_message(self.message(...))  # [edge, d]

With no hook attached it returns its input untouched (one attribute check). Forward
hooks ``fn(tensor, hook=hook_point)`` may return a replacement tensor of the same shape
(or ``None`` to leave it); backward hooks receive the gradient of the activation and may
return a replacement gradient.

**In-place edits.** Each hook receives its own copy of the activation (its gradient,
for a backward hook), and the copy, as the hook leaves it, goes on when the hook returns
``None``. So editing in place (``t[:, 0] = 0``, ``t.mul_(0.5)``) is exactly returning
the edited copy (``t = t.clone(); t[:, 0] = 0; return t``) at every hook point: no code
that also holds the activation (a fast path, a residual, autograd's saved tensors, the
caller's input) sees the edit, and hooks that only read change no bit of the result. An
in-place edit that changes the shape (``t.unsqueeze_(0)``) raises :class:`HookError`.
The copy is made only when a hook is attached; without one nothing is copied. A backward hook is attached to the activation *tensor*
during the forward pass, so it fires whenever ``.backward()`` later reaches it, even after
the call that added it (``run_with_hooks``) has returned and removed it.

:class:`HookedRootModule` finds its hook points, names them by module path
(``layers.3.hook_message``) and offers ``add_hook``, ``hooks()``, ``run_with_hooks``,
``run_with_cache`` and ``reset_hooks``.

Hooks live on the model object, so one model must not run from two threads at once
(one thread's hooks would fire in the other's forward); give each thread its own copy
(``copy.deepcopy(model)``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol, Union, runtime_checkable

import torch
from torch import Tensor, nn

from hookgnn.rounds import RoundRoles, declared_roles

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
    """

    def __init__(self, axis: Axis = "node") -> None:
        super().__init__()
        if axis not in AXES:
            raise ValueError(f"unknown hook axis {axis!r}; expected one of {AXES}")
        self.axis: Axis = axis
        self.name: str = "<unnamed hook point>"
        self._fwd: list[_Entry] = []
        self._bwd: list[_Entry] = []

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

    def forward(self, x: Tensor) -> Tensor:
        """Return ``x``, or what the forward hooks make of it; attach backward hooks to it."""
        if not (self._fwd or self._bwd):
            return x
        for entry in tuple(self._fwd):
            x = self._run(entry.fn, x, "forward")
        if self._bwd:
            if not x.requires_grad:
                raise HookError(
                    f"backward hook on {self.name} can never fire: the activation does not require grad "
                    "(running under torch.no_grad(), or with frozen parameters and inputs?)"
                )
            # Tensor hooks live on the autograd graph of this very run, so they fire at a
            # later .backward() even after the hook-point registration is gone.
            for entry in tuple(self._bwd):
                x.register_hook(_GradHook(entry.fn, self))
        return x

    def _run(self, fn: HookFn, x: Tensor, what: str) -> Tensor:
        """``fn`` on a private copy of ``x``: what it returns, else the copy as it left it.

        The copy is what makes an in-place edit equal to returning the edited copy: the
        hook never writes to a tensor that other code (or autograd) also holds, and the
        copy's autograd node (``CloneBackward``) saves nothing, so any in-place edit of it
        is allowed. Its values and gradient are those of ``x`` bit for bit.
        """
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


class _GradHook:
    def __init__(self, fn: HookFn, point: HookPoint) -> None:
        self.fn, self.point = fn, point

    def __call__(self, grad: Tensor) -> Tensor | None:
        # A private copy here too: autograd may hand one gradient tensor to several
        # places (the backward of a sum passes it to both terms).
        return self.point._run(self.fn, grad, "backward")


class HookInfo(NamedTuple):
    """One row of :meth:`HookedRootModule.list_hooks`."""

    name: str
    axis: Axis
    num_fwd: int
    num_bwd: int


class HookedRootModule(nn.Module):
    """A module whose :class:`HookPoint` descendants are named by their module path.

    Subclasses call :meth:`setup` at the end of ``__init__`` (after creating every hook
    point). See the module docstring for the hook semantics.

    >>> class Double(HookedRootModule):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.hook_out = HookPoint()
    ...         self.setup()
    ...     def forward(self, x):
    ...         return self.hook_out(2 * x)
    >>> with Double().hooks(fwd_hooks=[("hook_out", lambda act, hook: act + 1)]) as model:
    ...     model(torch.ones(1)).tolist()
    [3.0]
    """

    _hook_dict: dict[str, HookPoint]

    def setup(self) -> None:
        """Name every hook point after its module path, index them in ``hook_dict`` and
        record the round of each (:meth:`find_rounds`)."""
        hook_dict: dict[str, HookPoint] = {}
        seen: dict[int, str] = {}
        for name, module in self.named_modules(remove_duplicate=False):
            if isinstance(module, HookPoint):
                if id(module) in seen:
                    raise HookError(
                        f"one HookPoint is reachable as both {seen[id(module)]!r} and {name!r}: the same module "
                        "is used in two places (e.g. a processor factory that returns one shared module for "
                        "every round), so a hook on one name would fire at both and a cache would keep only "
                        "the last; build a new module per place (or HookedGNN(..., tie_weights=True) to share "
                        "weights across rounds)"
                    )
                seen[id(module)] = name
                module.name = name
                hook_dict[name] = module
        object.__setattr__(self, "_hook_dict", hook_dict)
        places = dict(self.find_rounds())
        object.__setattr__(self, "_places", places)
        object.__setattr__(self, "_by_place", {(rel, t): name for name, (t, rel) in places.items()})

    @property
    def hook_dict(self) -> dict[str, HookPoint]:
        """Every hook point by its name (module path)."""
        if "_hook_dict" not in self.__dict__:
            self.setup()
        return self._hook_dict

    # ----------------------------------------------------------------- rounds
    # Patching, attribution and circuits ask the model where its rounds are through the
    # methods below; they never parse hook names. A model with rounds overrides
    # find_rounds, round_module and state_hook.
    def find_rounds(self) -> dict[str, tuple[int, str]]:
        """Hook name -> (round, its path inside the round) for every hook point of a round.

        ``{}`` here (no rounds). :class:`~hookgnn.models.HookedGNN` maps
        ``layers.3.message_mlp.hook_post`` to ``(3, "message_mlp.hook_post")``.
        """
        return {}

    @property
    def round_places(self) -> dict[str, tuple[int, str]]:
        """What :meth:`find_rounds` found at :meth:`setup`."""
        self.hook_dict  # noqa: B018 - runs setup once
        return self._places

    @property
    def num_rounds(self) -> int:
        """How many rounds have hook points (0 for a model without rounds)."""
        return 1 + max((t for t, _ in self.round_places.values()), default=-1)

    def round_of(self, hook_name: str) -> int | None:
        """The round a hook point belongs to (``None`` outside rounds).

        >>> HookedRootModule().num_rounds
        0
        """
        self.resolve(hook_name)
        place = self.round_places.get(hook_name)
        return None if place is None else place[0]

    def counterparts(self, hook_name: str) -> list[str]:
        """The same hook point in every round (just ``[hook_name]`` outside rounds)."""
        self.resolve(hook_name)
        place = self.round_places.get(hook_name)
        if place is None:
            return [hook_name]
        return [name for name, (_, rel) in self.round_places.items() if rel == place[1]]

    def round_hook(self, short: str, t: int) -> str:
        """The full name of a round's hook point: ``"message"``, ``"hook_message"`` or
        ``"message_mlp.hook_post"`` in round ``t``; ``KeyError`` naming the rounds if absent."""
        self.hook_dict  # noqa: B018
        rel = relative_hook_name(short)
        name = self._by_place.get((rel, t))
        if name is None:
            have = sorted({r for (p, r) in self._by_place if p == rel})
            raise KeyError(f"no hook point {rel!r} in round {t}; it exists in rounds {have}"
                           if have else f"no hook point {rel!r} in any round of this model")
        return name

    def round_module(self, t: int) -> nn.Module:
        """The message-passing module that runs round ``t``."""
        raise NotImplementedError(f"{type(self).__name__} has no rounds (round_module is not defined)")

    def state_hook(self, t: int) -> str:
        """The hook point holding the node state that enters round ``t`` (``t = num_rounds``:
        the final state)."""
        raise NotImplementedError(f"{type(self).__name__} has no rounds (state_hook is not defined)")

    def output_hook(self, t: int) -> str:
        """The hook point holding what round ``t``'s module returns (``hook_update`` here)."""
        return self.round_hook("hook_update", t)

    def between_rounds(self, t: int) -> Callable[[Tensor], Tensor] | None:
        """The node-wise map from round ``t``'s output (:meth:`output_hook`) to the state
        entering round ``t + 1`` (:meth:`state_hook`), applied to rows of states; the
        identity when they are the same hook point, ``None`` when it is unknown (code
        between the rounds that is not node-wise). Exact local recomputation over several
        rounds (AtP*) needs it."""
        return _identity if self.output_hook(t) == self.state_hook(t + 1) else None

    def round_roles(self, t: int) -> RoundRoles:
        """How round ``t``'s module is called, for exact local recomputation (AtP*); here
        what the module declares (:func:`~hookgnn.rounds.declared_roles`)."""
        return declared_roles(self.round_module(t))

    @contextmanager
    def round_sources_replaced(self, t: int, fn: Callable[[Tensor], Tensor]) -> Iterator[None]:
        """While the block runs, a direct call of ``round_module(t)`` reads ``fn(src)``
        where it reads its ``hook_src`` activation ``src`` (here: a hook on that point)."""
        with self.hooks(fwd_hooks=[(self.round_hook("hook_src", t), lambda act, hook: fn(act))]):
            yield

    def list_hooks(self) -> list[HookInfo]:
        """Every hook point with its axis and the number of hooks attached now."""
        return [HookInfo(n, hp.axis, len(hp._fwd), len(hp._bwd)) for n, hp in self.hook_dict.items()]

    def resolve(self, name_or_predicate: str | Callable[[str], bool]) -> list[HookPoint]:
        """The hook points named by a name or selected by a predicate on names."""
        if isinstance(name_or_predicate, str):
            if name_or_predicate not in self.hook_dict:
                close = difflib.get_close_matches(name_or_predicate, list(self.hook_dict), n=5, cutoff=0.5)
                hint = f"; did you mean {close}?" if close else f"; {len(self.hook_dict)} hook points exist (see list_hooks())"
                raise KeyError(f"no hook point named {name_or_predicate!r}{hint}")
            return [self.hook_dict[name_or_predicate]]
        if callable(name_or_predicate):
            return [hp for n, hp in self.hook_dict.items() if name_or_predicate(n)]
        raise TypeError(f"a hook is selected by a name or a predicate, got {type(name_or_predicate).__name__}")

    def add_hook(
        self,
        name_or_predicate: str | Callable[[str], bool],
        fn: HookFn,
        dir: Direction = "fwd",
        is_permanent: bool = False,
        prepend: bool = False,
    ) -> HookHandle:
        """Attach ``fn`` to one hook point, or to every hook point a predicate selects.

        Returns a :class:`HookHandle`; ``handle.remove()`` detaches what this call added.
        """
        points = self.resolve(name_or_predicate)
        if not points:
            raise KeyError(f"the predicate {name_or_predicate!r} selects no hook point")
        handle = HookHandle()
        for hp in points:
            handle._entries += hp.add_hook(fn, dir, is_permanent, prepend)._entries
        return handle

    def add_perma_hook(self, name_or_predicate: str | Callable[[str], bool], fn: HookFn, dir: Direction = "fwd") -> HookHandle:
        """``add_hook(..., is_permanent=True)``: a hook that ``reset_hooks()`` keeps (TransformerLens name)."""
        return self.add_hook(name_or_predicate, fn, dir=dir, is_permanent=True)

    def reset_hooks(self, *args: Any, including_permanent: bool = False) -> None:
        """Remove forward and backward hooks (permanent ones too with ``including_permanent=True``).

        The argument is keyword-only: in TransformerLens ``reset_hooks(True)`` means
        ``clear_contexts``, so a positional argument is refused rather than guessed.
        """
        if args:
            raise TypeError(
                "reset_hooks takes keyword arguments only: reset_hooks(including_permanent=True) also removes "
                "permanent hooks (TransformerLens' positional reset_hooks(clear_contexts) has no equivalent: "
                "hookgnn contexts always remove their own hooks on exit)"
            )
        for hp in self.hook_dict.values():
            hp.remove_hooks("both", including_permanent)

    @property
    def mod_dict(self) -> dict[str, nn.Module]:
        """Every submodule by its module path (TransformerLens name)."""
        return dict(self.named_modules())

    def hook_points(self) -> list[HookPoint]:
        """Every hook point, in module order (TransformerLens name; see ``hook_dict``)."""
        return list(self.hook_dict.values())

    @contextmanager
    def hooks(
        self, fwd_hooks: Sequence[HookSpec] = (), bwd_hooks: Sequence[HookSpec] = (), **tl_keywords: Any
    ) -> Iterator[HookedRootModule]:
        """Attach hooks for the body of a ``with`` block and remove exactly those after it.

        Removal happens in a ``finally``: a hook or forward that raises leaves nothing
        behind, and nested contexts each remove only their own hooks.
        """
        _refuse_tl_keywords("hooks", tl_keywords, everything=True)
        handles: list[HookHandle] = []
        try:
            for specs, dir in ((fwd_hooks, "fwd"), (bwd_hooks, "bwd")):
                for name, fn in specs:
                    handles.append(self.add_hook(name, fn, dir=dir))  # type: ignore[arg-type]
            yield self
        finally:
            for h in handles:
                h.remove()

    def run_with_hooks(
        self, *args: Any, fwd_hooks: Sequence[HookSpec] = (), bwd_hooks: Sequence[HookSpec] = (), **kwargs: Any
    ) -> Any:
        """Run the forward with temporary hooks.

        Backward hooks stay attached to this run's activations: they fire when
        ``.backward()`` is called on its output later.
        """
        _refuse_tl_keywords("run_with_hooks", kwargs)
        with self.hooks(fwd_hooks, bwd_hooks):
            return self(*args, **kwargs)

    def run_with_cache(
        self,
        *args: Any,
        names_filter: NameFilter = None,
        grad_metric: Callable[[Any], Tensor] | None = None,
        device: torch.device | str | None = None,
        **kwargs: Any,
    ) -> tuple[Any, Any]:
        """Run the forward and return ``(output, ActivationCache)``.

        ``names_filter`` is a hook name, a sequence of names or a predicate (default: all).
        With ``grad_metric``, the gradient of the scalar ``grad_metric(output)`` with respect
        to every cached activation is computed in the same call (``torch.autograd.grad``,
        so parameters' ``.grad`` are untouched) and stored in ``cache.grads``; this works
        inside ``torch.no_grad()`` too (the forward and the metric run with grad enabled).

        ``device`` moves every cached tensor there; ``device="disk"`` writes each activation
        to a file as its hook point produces it (and each gradient as the backward
        reaches it) and maps them back (:mod:`hookgnn.disk`), so the cache need not fit
        in RAM. Under ``"disk"`` the backward never holds all gradients at once either.
        """
        _refuse_tl_keywords("run_with_cache", kwargs)
        points = self._filtered(names_filter)
        if isinstance(device, str) and device == "disk":
            from hookgnn.disk import run_to_disk

            out, acts, disk_grads = run_to_disk(self, args, kwargs, [hp.name for hp in points], grad_metric)
            return out, self._cache(args, kwargs, points, acts, disk_grads)
        if device is not None:
            try:
                torch.device(device)  # a bad name fails here, not after the forward
            except (RuntimeError, TypeError) as err:
                raise ValueError(f"run_with_cache(device={device!r}): not a torch device nor 'disk' ({err})") from None
        live: dict[str, Tensor] = {}

        def save(t: Tensor, hook: HookPoint) -> Tensor | None:
            if grad_metric is not None and not t.requires_grad:
                # Nothing upstream needs a gradient, so a fresh leaf cuts no path.
                t = t.detach().requires_grad_()
                live[hook.name] = t
                return t
            live[hook.name] = t
            return None

        grads: dict[str, Tensor] | None = None
        with torch.set_grad_enabled(grad_metric is not None or torch.is_grad_enabled()):
            with self.hooks(fwd_hooks=[(hp.name, save) for hp in points]):
                out = self(*args, **kwargs)
            if grad_metric is not None:
                # Still inside the grad-enabled block: under an outer torch.no_grad() the
                # metric must be recorded on the autograd graph too.
                grads = _grads_of(grad_metric(out), live)
        return out, self._cache(args, kwargs, points, {k: _store(v, device) for k, v in live.items()},
                                None if grads is None else {k: _store(v, device) for k, v in grads.items()})

    def _cache(self, args: Sequence[Any], kwargs: dict[str, Any], points: list[HookPoint], acts: dict[str, Tensor],
               grads: dict[str, Tensor] | None) -> Any:
        from hookgnn.cache import ActivationCache
        from hookgnn.graph import Graph

        graph = args[0] if args else kwargs.get("graph")
        graph = graph if isinstance(graph, Graph) else None  # e.g. a wrapped PyG model called on tensors
        return ActivationCache(
            acts,
            axes={hp.name: hp.axis for hp in points},
            graph=graph,
            grads=grads,
            places={hp.name: self.round_places[hp.name] for hp in points if hp.name in self.round_places},
        )

    def _filtered(self, names_filter: NameFilter) -> list[HookPoint]:
        if names_filter is None:
            return list(self.hook_dict.values())
        if isinstance(names_filter, str) or callable(names_filter):
            return self.resolve(names_filter)
        return [hp for name in names_filter for hp in self.resolve(name)]


def _store(t: Tensor, device: torch.device | str | None) -> Tensor:
    t = t.detach()
    return t if device is None else t.to(device)


def _grads_of(metric: Tensor, live: dict[str, Tensor]) -> dict[str, Tensor]:
    if not isinstance(metric, Tensor) or metric.numel() != 1:
        shape = tuple(metric.shape) if isinstance(metric, Tensor) else type(metric).__name__
        raise ValueError(f"grad_metric must return a scalar tensor, got {shape}")
    if not metric.requires_grad:
        raise ValueError("grad_metric's value does not depend on any activation that requires grad")
    names = [n for n, t in live.items() if t.requires_grad]
    found = torch.autograd.grad(metric, [live[n] for n in names], allow_unused=True)
    return {n: torch.zeros_like(live[n]) if g is None else g for n, g in zip(names, found)}


#: TransformerLens keywords that hookgnn spells differently, with what to use instead.
TL_KEYWORDS: dict[str, str] = {
    "incl_bwd": "pass grad_metric=fn (a scalar metric of the output); gradients land in cache.grads",
    "remove_batch_dim": "a hookgnn cache holds a disjoint-union batch; cache.graph(i) gives graph i's rows",
    "return_cache_object": "run_with_cache always returns an ActivationCache; dict(cache) gives a plain dict",
    "reset_hooks_end": "hooks of run_with_hooks / hooks() are always removed at the end; "
                       "permanent hooks (add_perma_hook) stay until reset_hooks(including_permanent=True)",
    "clear_contexts": "hooks() contexts always remove exactly their own hooks on exit",
    "pos_slice": "graphs have no positions; select rows with cache.select(nodes=..., edges=...)",
    "return_type": "call the model and read its ModelOutput",
}


def _refuse_tl_keywords(where: str, kwargs: dict[str, Any], everything: bool = False) -> None:
    """Raise ``TypeError`` for TransformerLens-only keywords, pointing to hookgnn's equivalent.

    With ``everything``, any leftover keyword is refused (``hooks()`` takes no others).
    """
    for key in kwargs:
        if key in TL_KEYWORDS:
            raise TypeError(f"{where}() has no {key!r} argument (a TransformerLens keyword): {TL_KEYWORDS[key]}")
    if everything and kwargs:
        raise TypeError(f"{where}() got unexpected keyword arguments {sorted(kwargs)}")


def relative_hook_name(short: str) -> str:
    """A hook's path inside its round from a short name.

    >>> relative_hook_name("message"), relative_hook_name("hook_src"), relative_hook_name("message_mlp.hook_post")
    ('hook_message', 'hook_src', 'message_mlp.hook_post')
    """
    return short if "." in short or short.startswith("hook_") else f"hook_{short}"


def _identity(t: Tensor) -> Tensor:
    return t
