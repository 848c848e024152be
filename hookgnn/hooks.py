"""Hook points and the root module that names them, with the TransformerLens API.

A :class:`HookPoint` is an identity module placed where an activation is made::

    msg = self.hook_message(self.message(...))  # [edge, d]

With no hook attached it returns its input untouched (one attribute check). Forward
hooks ``fn(tensor, hook=hook_point)`` may return a replacement tensor of the same shape
(or ``None`` to leave it); backward hooks receive the gradient of the activation and may
return a replacement gradient.

**In-place edits.** Each hook receives its own copy of the activation (its gradient, for a backward hook), and
the copy, as the hook leaves it, goes on when the hook returns ``None``. So editing in place (``t[:, 0] = 0``,
``t.mul_(0.5)``) is exactly returning the edited copy (``t = t.clone(); t[:, 0] = 0; return t``) at every hook
point: no code that also holds the activation (a fast path, a residual, autograd's saved tensors, the caller's
input) sees the edit, and hooks that only read change no bit of the result. An in-place edit that changes the
shape (``t.unsqueeze_(0)``) raises :class:`HookError`. The copy is made only when a hook is attached; without
one nothing is copied. Read-only hooks (:func:`~hookgnn.points.read_only`, the cache's) get the activation
itself: clone a cached tensor before editing it. A backward hook is attached to the activation *tensor* during
the forward pass, so it fires whenever ``.backward()`` later reaches it, even after the call that added it
(``run_with_hooks``) has returned and removed it.

:class:`HookedRootModule` finds its hook points, names them by module path
(``layers.3.hook_message``) and offers ``add_hook``, ``hooks()``, ``run_with_hooks``,
``run_with_cache`` and ``reset_hooks``.

**Threads.** ``model(...)``, :meth:`~HookedRootModule.run_with_hooks` and
:meth:`~HookedRootModule.run_with_cache` pick torch's CPU threads by the workload of their
inputs (:func:`~hookgnn.ops.threads.threads_by_inputs`): one thread for a small graph,
torch's setting for a large one, an enclosing ``use_threads(n)`` or ``OMP_NUM_THREADS``
wins, and torch's setting comes back after the call, also when a hook raises. Hooks run
inside the call, so they see that choice.

Hooks live on the model object, so one model must not run from two threads at once
(one thread's hooks would fire in the other's forward); give each thread its own copy
(``copy.deepcopy(model)``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from hookgnn._moved import moved_name
from hookgnn.cache.cache import ActivationCache
from hookgnn.cache.shared import storage_of, storages_before
from hookgnn.graph import Graph
from hookgnn.ops.threads import threads_by_inputs
from hookgnn.points import AXES, Axis, Direction, HookError, HookFn, HookHandle, HookPoint, HookSpec, NameFilter, read_only
from hookgnn.rounds import RoundMethods

__all__ = ["AXES", "Axis", "Direction", "HookError", "HookFn", "HookHandle", "HookInfo", "HookPoint", "HookSpec",
           "HookedRootModule", "NameFilter"]


class HookInfo(NamedTuple):
    """One row of :meth:`HookedRootModule.list_hooks`."""

    name: str
    axis: Axis
    num_fwd: int
    num_bwd: int


class HookedRootModule(RoundMethods, nn.Module):
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

    @threads_by_inputs
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """``nn.Module``'s call (hooks, then ``forward``) on threads chosen by the inputs'
        workload (module docstring, **Threads**)."""
        return super().__call__(*args, **kwargs)

    def setup(self) -> None:
        """Name every hook point after its module path, index them in ``hook_dict`` and
        record the round of each (:meth:`find_rounds`)."""
        self.__dict__.pop("_threads_width", None)  # the model may have grown: read its width again
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

    def hook_points(self, names_filter: NameFilter = None) -> list[HookPoint]:
        """Every hook point, in module order (TransformerLens name; see ``hook_dict``), or
        those ``names_filter`` selects (a hook name, a sequence of names or a predicate on
        names, as in :meth:`run_with_cache`); an unknown name raises ``KeyError``.

        >>> from hookgnn import HookedGNN
        >>> [hp.name for hp in HookedGNN("mpnn", 4, node_in=1, max_steps=2).hook_points(lambda n: "update" in n)][:2]
        ['layers.0.hook_update', 'layers.0.update_mlp.hook_pre']
        """
        if names_filter is None:
            return list(self.hook_dict.values())
        if isinstance(names_filter, str) or callable(names_filter):
            return self.resolve(names_filter)
        return [hp for name in names_filter for hp in self.resolve(name)]

    @contextmanager
    def hooks(
        self, fwd_hooks: Sequence[HookSpec] = (), bwd_hooks: Sequence[HookSpec] = (), **tl_keywords: Any
    ) -> Iterator[HookedRootModule]:
        """Attach hooks for the body of a ``with`` block and remove exactly those after it.

        Removal happens in a ``finally``: a hook or forward that raises leaves nothing
        behind, and nested contexts each remove only their own hooks.

        >>> from hookgnn import HookedGNN, Graph
        >>> model = HookedGNN("mpnn", d_hidden=4, node_in=1, max_steps=2)
        >>> g = Graph(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
        >>> with model.hooks(fwd_hooks=[("layers.1.hook_update", lambda act, hook: act * 0)]):
        ...     float(model(g).hidden.detach().abs().sum())
        0.0
        >>> model.hook_dict["layers.1.hook_update"].has_hooks
        False

        :param fwd_hooks: ``(name or predicate, fn)`` pairs; ``fn(activation, hook)`` returns a replacement
            or ``None``.
        :param bwd_hooks: the same for gradients, fired by a backward started inside the block.
        :param tl_keywords: TransformerLens keywords (``reset_hooks_end`` ...), refused with a message saying
            what to use instead.
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

    @threads_by_inputs
    def run_with_hooks(
        self, *args: Any, fwd_hooks: Sequence[HookSpec] = (), bwd_hooks: Sequence[HookSpec] = (), **kwargs: Any
    ) -> Any:
        """Run the forward with temporary hooks.

        Backward hooks stay attached to this run's activations: they fire when
        ``.backward()`` is called on its output later.

        >>> from hookgnn import HookedGNN, Graph
        >>> model = HookedGNN("mpnn", d_hidden=4, node_in=1, max_steps=2)
        >>> g = Graph(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
        >>> out = model.run_with_hooks(g, fwd_hooks=[("layers.1.hook_update", lambda act, hook: act * 0)])
        >>> float(out.hidden.detach().abs().sum())
        0.0

        :param args: the forward's positional arguments (a ``Graph`` for a :class:`~hookgnn.HookedGNN`).
        :param fwd_hooks: ``(name or predicate, fn)`` pairs for this run's forward.
        :param bwd_hooks: ``(name or predicate, fn)`` pairs for the gradients of this run's activations.
        :param kwargs: the forward's keywords (e.g. ``steps``).
        """
        _refuse_tl_keywords("run_with_hooks", kwargs)
        with self.hooks(fwd_hooks, bwd_hooks):
            return self(*args, **kwargs)

    @threads_by_inputs
    def run_with_cache(
        self,
        *args: Any,
        names_filter: NameFilter = None,
        grad_metric: Callable[[Any], Tensor] | None = None,
        device: torch.device | str | None = None,
        **kwargs: Any,
    ) -> tuple[Any, ActivationCache]:
        """Run the forward and return ``(output, ActivationCache)``.

        ``names_filter`` is a hook name, a sequence of names or a predicate (default: all).
        With ``grad_metric``, the gradient of the scalar ``grad_metric(output)`` with respect
        to every cached activation is computed in the same call (``torch.autograd.grad``,
        so parameters' ``.grad`` are untouched) and stored in ``cache.grads``; this works
        inside ``torch.no_grad()`` too (the forward and the metric run with grad enabled).

        ``device`` moves every cached tensor there; ``device="disk"`` writes each activation
        to a file as its hook point produces it (and each gradient as the backward
        reaches it) and maps them back (:mod:`hookgnn.cache.disk`), so the cache need not fit
        in RAM. Under ``"disk"`` the backward never holds all gradients at once either.

        >>> from hookgnn import HookedGNN, Graph
        >>> model = HookedGNN("mpnn", d_hidden=4, node_in=1, max_steps=2)
        >>> g = Graph(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
        >>> out, cache = model.run_with_cache(g, names_filter=lambda name: name.endswith("hook_message"))
        >>> sorted(cache.keys()), tuple(cache["layers.0.hook_message"].shape)
        (['layers.0.hook_message', 'layers.1.hook_message'], (2, 4))
        >>> _, cache = model.run_with_cache(g, grad_metric=lambda out: out.hidden.sum())
        >>> tuple(cache.grads["layers.1.hook_update"].shape)
        (3, 4)

        :param args: the forward's positional arguments (a ``Graph`` for a :class:`~hookgnn.HookedGNN`).
        :param names_filter: which hooks to cache: a hook name, a sequence of names or a predicate (default: all).
        :param grad_metric: ``grad_metric(output)`` -> a scalar whose gradient with respect to every cached
            activation is stored in ``cache.grads``.
        :param device: where the cached tensors go (a torch device), or ``"disk"``.
        :param kwargs: the forward's keywords (e.g. ``steps``).
        """
        _refuse_tl_keywords("run_with_cache", kwargs)
        points = self.hook_points(names_filter)
        if isinstance(device, str) and device == "disk":
            from hookgnn.cache.disk import run_to_disk

            out, acts, disk_grads = run_to_disk(self, args, kwargs, [hp.name for hp in points], grad_metric)
            return out, self._cache(args, kwargs, points, acts, disk_grads)
        if device is not None:
            try:
                torch.device(device)  # a bad name fails here, not after the forward
            except (RuntimeError, TypeError) as err:
                raise ValueError(f"run_with_cache(device={device!r}): not a torch device nor 'disk' ({err})") from None
        live: dict[str, Tensor] = {}
        outside = storages_before(self, args, kwargs)

        @read_only  # the cache holds the tensor the forward goes on with, as a private copy did: no copy made
        def save(t: Tensor, hook: HookPoint) -> Tensor | None:
            if storage_of(t) in outside:
                t = t.clone()  # an input, parameter or buffer passed through unchanged: never share it
            if grad_metric is not None:
                # A fresh leaf where nothing upstream needs a gradient (it cuts no path); else a view, its own autograd
                # node: a tensor passed on through two hook points gets at each the gradient of what reads it there.
                t = t.view_as(t) if t.requires_grad else t.detach().requires_grad_()
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
        graph = args[0] if args else kwargs.get("graph")
        graph = graph if isinstance(graph, Graph) else None  # e.g. a wrapped PyG model called on tensors
        return ActivationCache(
            acts,
            axes={hp.name: hp.axis for hp in points},
            graph=graph,
            grads=grads,
            places={hp.name: self.round_places[hp.name] for hp in points if hp.name in self.round_places},
        )


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


def __getattr__(name: str) -> Any:
    # 0.1 alias, removed in 0.3: relative_hook_name lives in hookgnn.names
    if name == "relative_hook_name":
        from hookgnn import names

        return moved_name(__name__, name, names)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
