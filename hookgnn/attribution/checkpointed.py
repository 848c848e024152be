"""Attribution with per-round checkpointing: the backward holds one round's autograd graph at a time.

A forward with gradients saves, for its backward, what every op of every round needs
(the message MLP's hidden layer after its relu, the scatter's argmax, ...): with
``T`` rounds on ``E`` edges about ``T`` times one round's ``[E, d]`` tensors, all alive
from the forward until the backward reaches them (about 2 KB per edge at d = 64 and 8
rounds, with parameters frozen). Here each round module
(:meth:`~hookgnn.rounds.Rounds.round_module`) runs under
:func:`torch.utils.checkpoint.checkpoint` (non-reentrant): the forward keeps only what
enters each round (the node state :math:`h^{(t)}` and the round's other arguments, which
the rounds share), and the backward, on reaching round ``t``, calls round ``t`` again from
:math:`h^{(t)}` with gradients, uses its saved tensors and drops them before round
``t - 1``:

.. math::

    g^{(T)} = \\partial m / \\partial h^{(T)}, \\qquad
    g^{(t)} = \\big(\\partial h^{(t+1)} / \\partial h^{(t)}\\big)^{\\top} g^{(t+1)}
    \\text{ through a fresh call of round } t, \\quad t = T-1, \\dots, 0.

The hook points of round ``t`` fire again in that call; their taps
(:mod:`hookgnn.cache.grad_taps`) were made in the forward, so each hook's gradient
arrives once, exactly as without checkpointing, and what a hook did in the forward
(the difference :math:`a^s - a^b` written to the offload folder) is not done again. The
hooks outside rounds (encoders, decoders) are tapped as usual. Peak memory: the per-round
inputs, the kept rows, and one round's working set (``benchmarks/bench_scaling.py``,
``attr_rows_disk``). Cost: one more forward of every round.

Which models: those whose round ``t`` hook points are modules inside ``round_module(t)``
(so that a second call of the module fires them), checked by :func:`checkpoint_reason`; the
recomputation is also checked call by call (the same hook points must fire in the same
order; torch checks that the round's tensor arguments were not edited in place since its
forward, and the saved tensors' shapes). A wrapped PyG model, whose hook points
live in the wrapper for one forward, is not checkpointed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint, set_checkpoint_early_stop

from hookgnn.attribution.row_blocks import row_taps, taps_row_local
from hookgnn.attribution.source_rounds import SourceRounds, forwards_wrapped
from hookgnn.cache.grad_taps import GradientTaps, frozen_parameters
from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.metrics.per_graph import Metric
from hookgnn.nn.chunking import rounds_checkpointed
from hookgnn.ops.plan import scatter_plans
from hookgnn.patching.copies import copy_means
from hookgnn.points import read_only, row_local


def checkpoint_reason(model: HookedRootModule) -> str:
    """Why ``model``'s rounds cannot be checkpointed ("" when they can): no rounds, or a
    round whose hook points are not modules inside its :meth:`~hookgnn.rounds.Rounds.round_module`
    (a second call of the module would not fire them). ``TypeError`` naming the model when
    it reports rounds but does not answer ``round_module``.

    >>> from hookgnn import HookedGNN
    >>> checkpoint_reason(HookedGNN("mpnn", 4, node_in=1, max_steps=2))
    ''

    :param model: the hooked model.
    """
    if model.num_rounds == 0:
        return f"{type(model).__name__} has no rounds"
    by_round: dict[int, list[str]] = {}
    for name, (t, _) in model.round_places.items():
        by_round.setdefault(t, []).append(name)
    for t in range(model.num_rounds):
        try:
            module = model.round_module(t)
        except NotImplementedError as e:
            raise TypeError(f"{type(model).__name__} reports {model.num_rounds} rounds but does not define "
                            f"round_module (the rounds protocol, hookgnn.rounds), so its rounds cannot be "
                            f"checkpointed: {e}") from None
        inside = {id(m) for m in module.modules()}
        outside = [n for n in by_round.get(t, []) if id(model.hook_dict[n]) not in inside]
        if outside:
            return (f"{type(model).__name__}: hook point {outside[0]!r} of round {t} is not a module inside "
                    f"round_module({t}) ({type(module).__name__}), so a second call of that module would not fire it")
    return ""


class _Calls:
    """The hook points each checkpointed round call fired in the forward, and the check that
    its recomputation in the backward fires the same ones in the same order."""

    def __init__(self, model: HookedRootModule, before_again: Callable[[int], None] | None = None) -> None:
        self.model_name = type(model).__name__
        self.backward = False
        self.log: list[list[str]] = []  # the innermost running call's list of fired hooks last
        self.made = 0  # checkpointed calls made so far in the forward
        self.before_again = before_again  # called with a call's index before its recomputation

    def fired(self, name: str) -> None:
        if self.log:
            self.log[-1].append(name)

    def context(self) -> tuple[AbstractContextManager[None], AbstractContextManager[None]]:
        """``context_fn`` of one :func:`~torch.utils.checkpoint.checkpoint` call."""
        first: list[str] = []
        self.made += 1
        return self._running(first), self._again(first, self.made - 1)

    @contextmanager
    def _running(self, into: list[str]) -> Iterator[None]:
        self.log.append(into)
        try:
            yield
        finally:
            self.log.pop()

    @contextmanager
    def _again(self, first: list[str], i: int) -> Iterator[None]:
        if self.before_again is not None:
            self.before_again(i)
        again: list[str] = []
        with self._running(again):
            yield
        if again != first:
            lost = [n for n in first if n not in again] or [n for n in again if n not in first] or again
            raise RuntimeError(f"{self.model_name}: recomputing a round in the backward did not fire the hook points "
                               f"its forward fired (first difference: {lost[0]!r}; forward {len(first)} hooks, "
                               f"recomputation {len(again)}); per-round checkpointing (attribute with offload=) "
                               "needs rounds that do the same when called again (no randomness, no state kept "
                               "between calls)")


def _rounds_checkpointed(modules: list[nn.Module], context_fn: Callable[[], Any]) -> AbstractContextManager[None]:
    """Every call of each module in ``modules`` runs under a non-reentrant checkpoint inside the block."""

    def wrap(inner: Callable[..., Any]) -> Callable[..., Any]:
        return lambda *args, **kwargs: checkpoint(inner, *args, use_reentrant=False, context_fn=context_fn, **kwargs)

    return forwards_wrapped(modules, wrap)


def checkpointed_run(
    model: HookedRootModule,
    batch: Graph,
    k: int,
    metric: Metric,
    names: list[str],
    forward_kwargs: dict[str, Any],
    on_forward: Callable[[Tensor, Any], bool | None] | None,
    on_grad: Callable[[str, Tensor], None],
    source: SourceRounds | None = None,
    on_recompute: Callable[[Tensor, Any], None] | None = None,
) -> Tensor:
    """One forward (parameters frozen, every round checkpointed; see the module docstring) with a
    tap on every hook of ``names``: ``on_forward(act, hook)`` runs once per hook in the forward (where it
    returns ``False`` the hook is not tapped, in the forward or a recomputation),
    ``on_grad(name, grad)`` once per hook the metric depends on, in the backward of the sum over
    the ``k`` copies of ``batch`` of each copy's mean metric. Where ``on_grad`` and ``on_forward`` (if
    given) are :func:`~hookgnn.points.row_local`, so is the tap: a hook point called a block of rows at a
    time (a message MLP in edge chunks) is tapped block by block, and ``on_grad(name, grad, span)`` gets
    the rows of each gradient (:func:`~hookgnn.attribution.row_blocks.row_taps`). With ``source``
    (:class:`~hookgnn.attribution.source_rounds.SourceRounds`), each round's recomputation first runs
    the source's round again (``source.before(i)``, its hook points firing into ``source.save``), and at the
    hook points ``source.deferred`` ``on_recompute(act, hook)`` runs in the recomputation instead of
    ``on_forward`` in the forward (always tapped). Returns the metric per graph
    (detached). ``TypeError`` if the model's rounds cannot be checkpointed (:func:`checkpoint_reason`).

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.metrics import OutputSum
    >>> from hookgnn.spec import FeatureSpec
    >>> _ = torch.manual_seed(0)
    >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=3)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> grads = {}
    >>> m = checkpointed_run(model, g, 1, OutputSum("d"), ["layers.1.hook_update"], {}, None, grads.__setitem__)
    >>> grads["layers.1.hook_update"].shape
    torch.Size([3, 4])

    :param model: the hooked model (not modified; its parameters are frozen only while it runs).
    :param batch: the graph (``k`` copies of one graph in a disjoint union).
    :param k: how many copies ``batch`` holds.
    :param metric: ``metric(output, graph)`` -> one value per graph.
    :param names: the hook points to tap.
    :param forward_kwargs: keywords for the forward.
    :param on_forward: called with each tapped activation and its hook in the forward (``None``: nothing);
        ``False`` from it: no tap there.
    :param on_grad: called with each hook's name and the gradient of the metric there (and its rows, where
        it is row-local).
    :param source: the source run's rounds, run again round by round in the backward (``None``: none).
    :param on_recompute: with ``source``: called with each activation of a hook point of ``source.deferred``
        and its hook in the round's recomputation.
    """
    reason = checkpoint_reason(model)
    if reason:
        raise TypeError(f"per-round checkpointing is not possible: {reason}")
    modules = list({id(m): m for m in (model.round_module(t) for t in range(model.num_rounds))}.values())
    taps = GradientTaps()
    calls = _Calls(model, source.before if source is not None else None)
    untapped: set[str] = set()
    deferred = source.deferred if source is not None else set()

    @read_only  # wraps the activation in an identity node, never edits it: no copy of it needed
    def tap(act: Tensor, hook: Any) -> Tensor:
        if source is not None and source.running:  # the source's round, run again before the base's
            return source.save(act, hook)
        calls.fired(hook.name)
        if hook.name in deferred:
            if calls.backward and on_recompute is not None:
                on_recompute(act, hook)
        elif on_forward is not None and not calls.backward and on_forward(act, hook) is False:
            untapped.add(hook.name)  # no gradient wanted there (nor in a recomputation)
        if hook.name in untapped:
            return act
        return taps.tap(act, row_taps(on_forward, on_grad, hook))

    if taps_row_local(on_forward, on_grad) and getattr(on_recompute, "row_local", True):  # (source.save is)
        row_local(tap)

    # early stop off (read when each checkpoint is made): a recomputation runs the whole round, so
    # that every hook point fires again and the check of _Calls sees the whole call
    with frozen_parameters(model), torch.enable_grad(), scatter_plans(), set_checkpoint_early_stop(False), \
            rounds_checkpointed():
        with _rounds_checkpointed(modules, calls.context), model.hooks(fwd_hooks=[(n, tap) for n in names]):
            per_graph = metric(model(batch, **forward_kwargs), batch)
            calls.backward = True  # from here on a hook fires only in a round's recomputation
            total = copy_means(per_graph, k).sum()
            if total.requires_grad:
                taps.backward(total)
    if not total.requires_grad:  # no tapped hook reaches the metric: fine if an untapped one does
        check_metric_reads(model, batch, k, metric, untapped, forward_kwargs)
    return per_graph.detach()


def _drop(_: Any) -> None:
    """A saved tensor not kept (:func:`check_metric_reads` runs no backward)."""


def check_metric_reads(model: HookedRootModule, batch: Graph, k: int, metric: Metric, untapped: set[str],
                       forward_kwargs: dict[str, Any]) -> None:
    """``ValueError`` unless the metric depends on the activation of one of the hook points ``untapped``
    (left untapped, as their difference is 0 everywhere): for a metric that no tapped activation reaches,
    one more forward with those activations made leaves that require grad tells whether it reads any of
    them (its sums are then zeros) or no hooked activation at all, which ``keep="all"`` rejects too (a
    metric through ``.item()``, ``argmax`` or ``detach``).

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.metrics import OutputSum
    >>> from hookgnn.spec import FeatureSpec
    >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=2)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> check_metric_reads(model, g, 1, OutputSum("d"), {"hook_node_embed"}, {})  # it reads it: no error
    >>> check_metric_reads(model, g, 1, lambda out, graph: torch.zeros(1), {"hook_node_embed"}, {})
    Traceback (most recent call last):
    ...
    ValueError: the metric does not depend on any hooked activation (its value does not require grad): attribution needs a metric differentiable in the model's activations (no .item(), argmax or detach on its way)

    :param model: the hooked model.
    :param batch: the graph (``k`` copies of one graph).
    :param k: how many copies ``batch`` holds.
    :param metric: ``metric(output, graph)`` -> one value per graph.
    :param untapped: the hook points left untapped.
    :param forward_kwargs: keywords for the forward.
    """
    if untapped:
        def leaf(act: Tensor, hook: Any) -> Tensor:
            return act.detach().requires_grad_()

        # no backward follows: autograd saves nothing (memory of a no-grad forward), it only marks what requires grad
        with frozen_parameters(model), torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(_drop, _drop), \
                model.hooks(fwd_hooks=[(n, leaf) for n in sorted(untapped)]):
            if copy_means(metric(model(batch, **forward_kwargs), batch), k).sum().requires_grad:
                return
    raise ValueError("the metric does not depend on any hooked activation (its value does not require grad): "
                     "attribution needs a metric differentiable in the model's activations (no .item(), argmax or "
                     "detach on its way)")
