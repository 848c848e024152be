"""The source run's rounds run again one at a time in the backward, so that an offloaded
attribution holds (on disk) the source activations of one round, not of every round.

Plain attribution patching needs, at every hook point of round ``t``, the difference
:math:`\\Delta a = a^s - a^b` and the gradient :math:`g` of the metric at the base run. The
difference is known in the forward, the gradient only when the backward reaches round ``t``,
so one of them must wait: with ``offload=`` the source activations used to wait on disk, every
round's at once (on ``E = 1e7`` edges, every hook point of 8 rounds: ~77 GB). Here the source
forward keeps instead what enters each round call (the node state :math:`h^{(t)}_s` and the
round's other arguments: a round's module is called on them again), and where the base run's
backward recomputes round ``t`` (:mod:`hookgnn.attribution.checkpointed`) it first runs the
source's round ``t`` again, without gradients, from those inputs:

.. math::

    a^s_t = \\mathrm{round}_t\\big(h^{(t)}_s, \\dots\\big) \\text{ (no grad)}, \\qquad
    \\Delta a_t = a^s_t - a^b_t \\text{ in round } t\\text{'s recomputation}, \\qquad
    \\text{products with } g_t \\text{ in its backward}.

Its hook points write their source activations (a block of rows at a time where the hook point is
called so), the recomputed base round turns them into differences, the taps reduce those against
the gradients and drop them: the files hold one round's activations at a time. Cost: one more
no-grad call of every round on the source graph. The numbers are the same: round ``t`` of the source
run is called on the very inputs its forward called it on (checked: an input edited in place since
raises), and each hook point must fire in the same call as in the base run (else ``ValueError``).
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from hookgnn.attribution.row_blocks import write_source
from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.points import read_only, row_local


@contextmanager
def forwards_wrapped(modules: list[nn.Module], wrap: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Iterator[None]:
    """Inside the block, each module of ``modules`` runs ``wrap(its forward)`` when called (hooks and all
    of ``nn.Module.__call__`` as before); restored on exit, also after an error.

    >>> lin = nn.Linear(2, 2)
    >>> with forwards_wrapped([lin], lambda inner: lambda x: inner(x) * 0):
    ...     inside = lin(torch.ones(1, 2)).abs().sum().item()
    >>> inside, "forward" in lin.__dict__
    (0.0, False)

    :param modules: the modules.
    :param wrap: makes the forward to run from the module's own.
    """
    before: list[tuple[nn.Module, Any]] = []
    try:
        for m in modules:
            before.append((m, m.__dict__.get("forward")))
            m.forward = wrap(m.forward)  # type: ignore[method-assign]
        yield
    finally:
        for m, old in before:
            if old is None:
                del m.forward
            else:
                m.forward = old  # type: ignore[method-assign]


#: Round-call inputs of at least this many bytes wait for their call's rerun in the files, not in memory
#: (the source's node state of every round, its edge features' encoding).
SPILL_BYTES = 1 << 20


@dataclass(frozen=True)
class _Spilled:
    """A round call's input kept in the files under ``key``."""

    key: str


class SourceRounds:
    """The source run of an offloaded, checkpointed plain attribution, with the hook points ``deferred``
    (hook points of rounds) made again round by round in the backward (see the module docstring).

    :meth:`run` is the source forward: the other hook points of ``names`` write their activations to
    ``files`` (``"source:<name>"``), the deferred ones only report their shape, and each round call's
    inputs are kept. :meth:`before` runs round call ``i`` again (no grad) and writes the deferred hook
    points' activations; while it runs, :attr:`running` is set and the base run's hooks hand what fires
    to :meth:`save`.

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.cache.disk import TensorFiles
    >>> import tempfile
    >>> _ = torch.manual_seed(0)
    >>> model = HookedGNN("mpnn", 4, node_in=1, max_steps=2)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     files = TensorFiles(within=d)
    ...     rounds = SourceRounds(model, {"layers.1.hook_message"}, files)
    ...     fired = rounds.run(g, ["layers.1.hook_message"], {})
    ...     with model.hooks(fwd_hooks=[("layers.1.hook_message", rounds.save)]):
    ...         rounds.before(1)  # (in attribution: the base run's hooks hand it on while it runs)
    ...     same = torch.equal(files.read("source:layers.1.hook_message"),
    ...                        model.run_with_cache(g)[1]["layers.1.hook_message"])
    ...     files.close()
    >>> same
    True

    :param model: the hooked model (its rounds checkpointable, :func:`~hookgnn.attribution.checkpointed.checkpoint_reason`).
    :param deferred: the hook points made again in the backward (each inside a round module).
    :param files: where the source activations go.
    """

    def __init__(self, model: HookedRootModule, deferred: set[str], files: Any) -> None:
        self.model, self.deferred, self.files = model, deferred, files
        self.running = False
        self.fired: dict[str, Tensor] = {}  # name -> meta tensor (shape, dtype), in firing order
        self._calls: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], list[tuple[Tensor, int]]]] = []
        self._names_of_call: list[list[str]] = []  # the deferred hook points each call fired
        self._made: set[str] = set()  # deferred hook points whose difference is made
        self._held: dict[str, list[Callable[[], None]]] = {}  # what waits for a difference
        self._spilled: dict[int, tuple[weakref.ref[Tensor], str]] = {}  # id of a spilled input -> (it, its file)
        self._uses: Counter[str] | None = None  # spilled input -> calls still to run again that read it

    def run(self, src: Graph, names: list[str], forward_kwargs: dict[str, Any]) -> dict[str, Tensor]:
        """The source forward (no grad); returns, in firing order, a meta tensor per hook point of ``names``
        (the dictionary :meth:`save` adds to again)."""
        self.fired, self._calls, self._names_of_call, self._made, self._held = {}, [], [], set(), {}
        for key in [k for _, k in self._spilled.values() if k in self.files]:
            self.files.remove(key)
        self._spilled, self._uses = {}, None

        @row_local  # a block of rows goes to its rows of the file
        @read_only  # written to its file, never edited or kept
        def first(act: Tensor, hook: Any) -> None:
            if hook.name in self.deferred:
                if not self._names_of_call:
                    raise ValueError(f"{hook.name} fired outside every round call of {type(self.model).__name__}, "
                                     "so its round cannot be run again")
                self._names_of_call[-1].append(hook.name)
                span = hook.span  # (its shape only: written when its round runs again)
                shape = act.shape if span is None else (span.rows, *act.shape[1:])
                self.fired[hook.name] = torch.empty(shape, dtype=act.dtype, device="meta")
            else:
                self._write(act, hook)

        modules = list({id(m): m for m in (self.model.round_module(t) for t in range(self.model.num_rounds))}.values())
        with torch.no_grad(), self._recorded(modules), self.model.hooks(fwd_hooks=[(n, first) for n in names]):
            self.model(src, **forward_kwargs)
        return self.fired

    def _recorded(self, modules: list[nn.Module]) -> AbstractContextManager[None]:
        """Every call of each module in ``modules`` inside the block is kept: the callable, its arguments and
        the version of each tensor among them (an in-place edit since is caught in :meth:`before`)."""

        def wrap(inner: Callable[..., Any]) -> Callable[..., Any]:
            def call(*args: Any, **kwargs: Any) -> Any:
                kept_args = tuple(self._keep(a) for a in args)
                kept_kwargs = {k: self._keep(v) for k, v in kwargs.items()}
                tensors = [t for a in (*kept_args, *kept_kwargs.values())
                           for t in (a if isinstance(a, (list, tuple)) else (a,)) if isinstance(t, Tensor)]
                self._calls.append((inner, kept_args, kept_kwargs, [(t, t._version) for t in tensors]))
                self._names_of_call.append([])
                return inner(*args, **kwargs)

            return call

        return forwards_wrapped(modules, wrap)

    def before(self, i: int) -> None:
        """Round call ``i`` of the source run again (no grad), its deferred hook points written to the files;
        nothing where that call fired none. ``ValueError`` if the base run made more round calls than the
        source run, or an input of call ``i`` was edited in place since the source forward."""
        if i >= len(self._calls):
            raise ValueError(f"the base run called {type(self.model).__name__}'s round modules more often than the "
                             f"source run ({len(self._calls)} calls): attribution with offload= needs the same rounds")
        if not self._names_of_call[i]:
            return
        inner, args, kwargs, versions = self._calls[i]
        for t, v in versions:
            if t._version != v:
                raise ValueError(f"an input of the source run's round call {i} of {type(self.model).__name__} was "
                                 "edited in place after the call, so the round cannot be run again as it ran")
        if self._uses is None:  # how many calls still to run again read each spilled input
            self._uses = Counter(a.key for j, (_, a_, k_, _) in enumerate(self._calls) if self._names_of_call[j]
                                 for a in (*a_, *k_.values()) if isinstance(a, _Spilled))
        read: dict[str, Tensor] = {}

        def back(a: Any) -> Any:
            if not isinstance(a, _Spilled):
                return a
            if a.key not in read:
                read[a.key] = self.files.read(a.key)
                self._uses[a.key] -= 1
                if not self._uses[a.key]:
                    self.files.remove(a.key)
            return read[a.key]

        self.running = True
        try:
            with torch.no_grad():
                inner(*(back(a) for a in args), **{k: back(v) for k, v in kwargs.items()})
        finally:
            self.running = False

    @row_local  # (as run's hook)
    def save(self, act: Tensor, hook: Any) -> Tensor:
        """The hook of every hook point while :meth:`before` runs: a deferred one's activation (or rows of
        it) to its file; the activation itself is returned."""
        if hook.name in self.deferred:
            self._write(act, hook)
        return act

    def waits(self, name: str) -> bool:
        """Whether ``name``'s difference is still to be made (a deferred hook point whose round has not run
        again yet: its gradient can come first, from the taps made in the forward)."""
        return name in self.deferred and name not in self._made

    def hold(self, name: str, then: Callable[[], None]) -> None:
        """Run ``then`` once ``name``'s difference is made (:meth:`made`)."""
        self._held.setdefault(name, []).append(then)

    def made(self, name: str) -> None:
        """``name``'s difference is made: run what :meth:`hold` kept for it."""
        self._made.add(name)
        for then in self._held.pop(name, ()):
            then()

    def finish(self) -> None:
        """``RuntimeError`` if a gradient still waits for a difference (its round was never recomputed)."""
        if self._held:
            name = next(iter(self._held))
            raise RuntimeError(f"{name}: its gradient came but its round was not recomputed in the backward, so the "
                               "source run's round was not run again; attribute with offload= needs rounds whose "
                               "backward reads what the round saved")

    def _keep(self, a: Any) -> Any:
        """A round call's argument as kept until the call runs again: a large contiguous CPU tensor written to
        the files once (however many calls take it) and a :class:`_Spilled` in its place, anything else itself."""
        if not (isinstance(a, Tensor) and a.device.type == "cpu" and a.is_contiguous()
                and a.numel() * a.element_size() >= SPILL_BYTES):
            return a
        ref_key = self._spilled.get(id(a))
        if ref_key is not None and ref_key[0]() is a:
            return _Spilled(ref_key[1])
        key = f"round input:{len(self._spilled)}"
        self.files.write(key, a)
        self._spilled[id(a)] = (weakref.ref(a), key)
        return _Spilled(key)

    def _write(self, act: Tensor, hook: Any) -> None:
        self.fired[hook.name] = write_source(self.files, act, hook)


__all__ = ["SPILL_BYTES", "SourceRounds", "forwards_wrapped"]
