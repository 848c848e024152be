"""Attribution that keeps only what it returns: products made as the backward reaches each hook.

:func:`~hookgnn.attribution.gradients.attribute` with ``keep="all"`` returns the
differences :math:`\\Delta a = a^s - a^b` and the (averaged) gradients :math:`\\bar g` of
every hook, twice the memory of a cache, and holds the autograd graph besides. With
``keep`` = ``"entries"``, ``"rows"`` or ``"features"`` it comes here and returns only

* ``"entries"``: :math:`\\Delta a \\odot \\bar g` (the shape of the activation),
* ``"rows"``: :math:`\\sum_f (\\Delta a \\odot \\bar g)_{r f}` (one value per node / edge, ``by_row``)
  and the feature sums below (``by_feature``, a few numbers more),
* ``"features"``: :math:`\\sum_r (\\Delta a \\odot \\bar g)_{r f}` (one value per neuron, ``by_feature``),

the same numbers :class:`~hookgnn.attribution.gradients.Attribution` derives from
``keep="all"``, up to float rounding, with the base run's metric as ``baseline`` (read from
a forward that runs anyway). How memory is saved:

1. the parameters are frozen during the backward (:func:`~hookgnn.cache.grad_taps.frozen_parameters`),
   so autograd does not save each linear layer's input for a weight gradient;
2. each hook's gradient is consumed by a tap as the backward reaches it
   (:mod:`hookgnn.cache.grad_taps`): the product is made, reduced and the gradient and the
   difference are dropped, so no two of {differences, gradients, products} are held in full;
   for ``"rows"`` and ``"features"`` the product is never made: both sums come from one pass over
   the difference and the gradient (:func:`~hookgnn.ops.products.product_sums`);
3. for plain attribution (``ig_steps=0``) the difference is made in the base run's own
   forward, from the source run's cached activation, which is dropped at once;
4. with ``offload=FOLDER`` the source activations, the differences (and ``"entries"``
   products) live in files there while the job runs (:mod:`hookgnn.cache.disk`), so RAM holds
   little more than the frozen-parameter autograd graph; the folder is checked first; and every round
   runs checkpointed (:mod:`hookgnn.attribution.checkpointed`), so the backward holds one round's
   autograd graph at a time (where the model's hook points are modules of its rounds; a wrapped PyG
   model keeps the whole graph); the products' row and feature sums read each difference back a
   block of rows at a time (:data:`~hookgnn.attribution.slots.ROWS_PER_BLOCK`), and no block cache
   holds freed memory; a message MLP's hidden neurons go chunk by chunk
   (:mod:`hookgnn.attribution.row_blocks`), never whole ``[E, d_mlp]``; in plain attribution the source run's
   round hook points are made again round by round in the backward (:mod:`hookgnn.attribution.source_rounds`),
   so the files hold one round's source activations at a time;
5. for ``"rows"`` and ``"features"``, a hook point that the links say copies a node hook point to the
   edges and feeds one linear layer alone (``hook_src``) is scored from that node hook point's
   difference and that layer's gradient (:mod:`hookgnn.attribution.contracted`): it is never hooked,
   so the source run does not cache it and the rounds never build its ``[E, d]`` rows or their gradient
   (a chunk of rows at a time where that layer's gradient comes so);
6. in plain attribution, a hook point whose difference is 0 everywhere and that nothing before it
   connects to a gradient (an input both runs share, e.g. the edge features' encoding when only ``x``
   is corrupted) gets no tap: its sums are exact zeros, and the backward computes no gradient there
   that nothing else needs.

Peak memory, measured by ``benchmarks/bench_scaling.py``, is about one cache (the
differences) plus the frozen forward in memory, and with ``offload`` the node states of every round plus one
round's autograd graph.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor

from hookgnn.attribution.checkpointed import check_metric_reads, checkpoint_reason, checkpointed_run
from hookgnn.attribution.contracted import Contraction, contracted_sums, contractions
from hookgnn.attribution.interpolate import interpolate, interpolated_fields
from hookgnn.attribution.row_blocks import RowDifferences, row_taps, source_to_files, taps_row_local
from hookgnn.attribution.slots import Slots, difference_in_files, reduced_shape
from hookgnn.attribution.source_rounds import SourceRounds
from hookgnn.cache.disk import TensorFiles
from hookgnn.cache.grad_taps import GradientTaps, frozen_parameters
from hookgnn.cache.shared import storage_of
from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule, NameFilter
from hookgnn.metrics.per_graph import Metric
from hookgnn.outpaths import writable_folder
from hookgnn.points import RowSpan, row_local, transient
from hookgnn.patching.copies import chunks, copies_per_forward, copy_means, disjoint_union, per_copy
from hookgnn.patching.results import KEEPS, KEPT_FIELDS, Attribution, Direction, Keep


def ig_alphas(ig_steps: int) -> list[float]:
    """The one grid of interpolation points of every gradient estimator: the midpoint rule
    :math:`\\alpha_k = (k + 1/2) / K`, ``K = ig_steps``; ``[]`` for ``ig_steps=0``, where the
    gradient is taken at the base run itself (plain attribution patching). ``ValueError`` if
    ``ig_steps < 0``.

    >>> ig_alphas(0), ig_alphas(2)
    ([], [0.25, 0.75])
    """
    if ig_steps < 0:
        raise ValueError(f"ig_steps must be >= 0 (0: plain attribution patching), got {ig_steps}")
    return [(k + 0.5) / ig_steps for k in range(ig_steps)]


def check_keep(keep: str, offload: str | os.PathLike[str] | None) -> Keep:
    """``keep`` if it is one of :data:`KEEPS` and fits ``offload``, else ``ValueError``.

    >>> check_keep("rows", None)
    'rows'
    """
    if keep not in KEEPS:
        raise ValueError(f"keep must be one of {KEEPS}, got {keep!r}")
    if offload is not None and keep == "all":
        raise ValueError("offload= needs keep='entries', 'rows' or 'features' (keep='all' holds every difference "
                         "and gradient in memory by definition)")
    return keep  # type: ignore[return-value]


def streamed_attribution(
    model: HookedRootModule,
    base: Graph,
    src: Graph,
    metric: Metric,
    names_filter: NameFilter,
    alphas: Sequence[float],
    keep: Keep,
    chunk: int,
    offload: str | os.PathLike[str] | None,
    direction: Direction,
    forward_kwargs: dict[str, Any],
) -> Any:
    """Attribution products (see the module docstring); ``alphas`` empty: plain attribution at
    the base, else the input interpolation points of EAP-IG. Returns an
    :class:`~hookgnn.attribution.gradients.Attribution` with ``keep``, its fields
    (:data:`~hookgnn.patching.results.KEPT_FIELDS`) and ``baseline`` set."""
    files = TensorFiles(within=writable_folder(offload)) if offload is not None else None
    deltas = Slots(files, "delta:")
    kept = {to: Slots(files if to == "by_entry" else None, to + ":", to) for to in KEPT_FIELDS[keep]}
    shapes: dict[str, tuple[torch.Size, torch.dtype]] = {}
    axes: dict[str, str] = {}
    # hook points scored through the links (hookgnn.attribution.contracted): never hooked, cached or tapped
    requested = list(dict.fromkeys(hp.name for hp in model.hook_points(names_filter)))
    contracted = contractions(model, requested, base, src) if keep in ("rows", "features") else {}
    # with offload, one round's autograd graph at a time (hookgnn.attribution.checkpointed), where the model allows
    run = checkpointed_run if files is not None and not checkpoint_reason(model) else _tapped_run
    # there, in plain attribution, the source's rounds run again one by one in the backward (on disk: one
    # round's activations at a time; hookgnn.attribution.source_rounds), all but hook points read through links
    rounds = None
    if run is checkpointed_run and not alphas:
        linked = {c.node for c in contracted.values()}
        deferred = {n for n in requested if n in model.round_places and n not in contracted and n not in linked}
        rounds = SourceRounds(model, deferred, files) if deferred else None
    try:
        source = _source_run(model, src, [n for n in requested if n not in contracted], files, rounds, forward_kwargs)
        misfit = [n for n, c in contracted.items() if not _fits(c, source, base)]
        if misfit:  # P's rows are not the graph's edges (or A's not its nodes): run again, tapping them after all
            contracted = {n: c for n, c in contracted.items() if n not in misfit}
            for n in source if files is not None else ():
                if rounds is None or n not in rounds.deferred:
                    files.remove("source:" + n)
            source = _source_run(model, src, [n for n in requested if n not in contracted], files, rounds,
                                 forward_kwargs)
        for n in rounds.deferred & source.keys() if rounds is not None else ():  # (set again where they run again)
            shapes[n], axes[n] = (source[n].shape, source[n].dtype), model.hook_dict[n].axis
        into: dict[str, list[Contraction]] = {}
        linked = {c.node for c in contracted.values()}
        for c in contracted.values():
            into.setdefault(c.into, []).append(c)
            shapes[c.name] = (torch.Size([base.edge_index.shape[1], c.weight.shape[1]]), source[c.into].dtype)
            axes[c.name] = "edge"
        names = [m for n in source for m in [*(c.name for c in into.get(n, ())), n]]  # each H just before its P
        # a tensor that two hooks share (one passed on unchanged, or a view of it) is never overwritten
        where = {n: storage_of(t) for n, t in source.items() if storage_of(t) is not None} if files is None else {}
        shared = Counter(where.values())
        own = {n for n, p in where.items() if shared[p] == 1}
        tapped = list(source)
        in_rows = RowDifferences(source, files, deltas, own, keep, shapes, axes)

        @row_local  # or a block of rows at a time (hook.span), each row once, in order
        def difference(act: Tensor, hook: Any, check: bool = True) -> bool:
            """Make and keep the hook's difference; returns whether it is 0 everywhere (checked with ``check``,
            only where nothing before the hook needs a gradient, so that a tap there would lengthen the backward)."""
            if hook.span is not None:
                in_rows(act.detach(), hook.name, hook.span, hook.axis)
                return False
            if hook.name not in source:
                raise ValueError(f"{hook.name} fired more than once in one forward (a module called twice?): "
                                 f"attribution with keep={keep!r} needs each hook point once per forward")
            s = source.pop(hook.name)
            shapes[hook.name], axes[hook.name] = (act.shape, act.dtype), hook.axis
            if files is not None and s.dim() and s.shape == act.shape:
                return difference_in_files(files, hook.name, act.detach()) and check and not act.requires_grad
            if files is not None:
                s = files.read("source:" + hook.name, remove=True)
            # in RAM the source activation is a tensor of this job's own forward, shared with no other
            # hook: the difference overwrites it (no fresh buffer, whose first touch costs page faults)
            same = hook.name in own and s.dtype == act.dtype and s.device == act.device and s.shape == act.shape
            d = s.sub_(act.detach()) if same else s.to(act) - act.detach()  # (act's shape and dtype)
            deltas.put(hook.name, d)
            return check and not act.requires_grad and not bool(d.any())

        @row_local  # (as difference)
        def at_base_forward(act: Tensor, hook: Any) -> bool:
            """The difference; ``False`` (no tap wanted) where it is 0 everywhere and no gradient reaches the
            hook otherwise: its sums are 0 whatever the gradient, so the backward need not make one there
            (an input of the graph that both runs share, e.g. the edge features' encoding)."""
            if difference(act, hook):
                if hook.name not in linked:  # (a hook point scored through the links still reads it)
                    deltas.drop(hook.name)
                return False
            return True

        def through_links(name: str, grad: Tensor, steps: int, span: RowSpan | None = None) -> None:
            """The sums of the hook points scored through ``name``'s gradient (``steps``: the IG steps
            they are averaged over, 0 for plain attribution; ``span``: the gradient's rows, ``None``: all)."""
            edges = base.edge_index if span is None else base.edge_index[:, span.start:span.stop]
            for c in into.get(name, ()):
                for to, v in contracted_sums(c, deltas.get(c.node), grad, edges, list(kept)).items():
                    kept[to].put(c.name, v, span) if not steps else kept[to].add(c.name, v.div_(steps), span)

        if not alphas:  # the base run itself: differences in its forward, products in its backward
            @row_local  # a gradient of rows span.start:span.stop (None: all)
            def at_base(name: str, grad: Tensor, span: RowSpan | None) -> None:
                if rounds is not None and rounds.waits(name):  # the gradient came before its round's recomputation
                    return rounds.hold(name, partial(at_base, name, grad.clone(), span))
                through_links(name, grad, 0, span)
                for to, reduced in deltas.reduced(name, grad, list(kept), remove=True, span=span).items():
                    kept[to].put(name, reduced, span)

            @row_local  # (as difference)
            def at_recompute(act: Tensor, hook: Any) -> None:
                difference(act, hook, check=False)
                if hook.span is None or hook.span.stop == hook.span.rows:
                    rounds.made(hook.name)  # type: ignore[union-attr]

            again = {} if rounds is None else {"source": rounds, "on_recompute": at_recompute}
            baseline = float(run(model, base, 1, metric, tapped, forward_kwargs, at_base_forward, at_base,
                                 **again).mean())
            if rounds is not None:
                rounds.finish()
        else:
            @row_local
            def along_forward(act: Tensor, hook: Any) -> None:
                difference(act, hook, check=False)

            with torch.no_grad(), model.hooks(fwd_hooks=[(n, along_forward) for n in tapped]):
                baseline = float(metric(model(base, **forward_kwargs), base).mean())
            n = len(alphas)
            fields = interpolated_fields(model, base, src)
            chunk = copies_per_forward(model, tapped, chunk)  # one graph per forward where rows do not follow copies
            for _, points in chunks(alphas, chunk):
                part = [interpolate(base, src, a, fields) for a in points]
                k = len(part)

                def along_path(name: str, grad: Tensor, span: RowSpan | None = None, k: int = k) -> None:
                    g = grad if k == 1 else per_copy(grad, k).sum(0)
                    through_links(name, g, n, span)
                    for to, reduced in deltas.reduced(name, g, list(kept), remove=False, span=span).items():
                        kept[to].add(name, reduced.div_(n), span)

                if k == 1:  # (the rows of k > 1 copies are not the difference's rows)
                    row_local(along_path)

                run(model, disjoint_union(part), k, metric, tapped, forward_kwargs, None, along_path)
        fields: dict[str, dict[str, Tensor]] = {to: {} for to in kept}
        for to, slots in kept.items():
            for name in names:
                if name not in slots:  # the metric does not depend on it: zeros of the kept field's shape
                    shape, dtype = shapes[name]
                    slots.put(name, torch.zeros(reduced_shape(shape, to), dtype=dtype))
                fields[to][name] = slots.result(name)
    finally:
        if files is not None:
            files.close()
    return Attribution({n: axes[n] for n in names}, baseline, direction, keep=keep, **fields)


def _source_run(model: HookedRootModule, src: Graph, names: list[str], files: TensorFiles | None,
                rounds: SourceRounds | None, forward_kwargs: dict[str, Any]) -> dict[str, Tensor]:
    """The source run's activations of the hook points ``names``, in firing order: in memory, or (``files``)
    written to files, with a meta tensor (shape and dtype) in their place (``rounds``: those of its deferred
    hook points written only when their round runs again, :class:`SourceRounds`)."""
    if not names:
        return {}
    if rounds is not None:
        return rounds.run(src, names, forward_kwargs)
    if files is not None:  # read back a block of rows at a time (no whole activation mapped or in memory)
        return source_to_files(model, src, names, files, forward_kwargs)
    with torch.no_grad():
        _, cache = model.run_with_cache(src, names_filter=names, **forward_kwargs)
    return dict(cache.items())


def _fits(c: Contraction, source: dict[str, Tensor], base: Graph) -> bool:
    """Whether ``c``'s hook points have the rows its formulas read: ``P`` the graph's edges, ``A`` its nodes."""
    p, a = source[c.into], source[c.node]
    return (p.dim() == 2 and p.shape[0] == base.edge_index.shape[1] and p.shape[1] == c.weight.shape[0]
            and a.dim() == 2 and a.shape[1] == c.weight.shape[1] and a.shape[0] == base.num_nodes)


def _tapped_run(
    model: HookedRootModule,
    batch: Graph,
    k: int,
    metric: Metric,
    names: list[str],
    forward_kwargs: dict[str, Any],
    on_forward: Callable[[Tensor, Any], bool | None] | None,
    on_grad: Callable[[str, Tensor], None],
) -> Tensor:
    """One forward (parameters frozen) with a tap on every hook of ``names``, then the backward of
    the sum over the ``k`` copies of each copy's mean metric; returns the metric per graph (detached).
    ``on_forward`` must keep no reference to the activation it is given (the tap is ``transient``); where
    it returns ``False`` the hook is not tapped (``on_grad`` is never called for it).
    Where ``on_grad`` and ``on_forward`` (if given) are :func:`~hookgnn.points.row_local`, so is the tap,
    and ``on_grad`` gets the rows of each gradient as a third argument (:func:`row_taps`)."""
    taps = GradientTaps()
    untapped: set[str] = set()

    @transient  # an identity node over the activation, never edited or kept (nor by on_forward): no copy needed
    def tap(act: Tensor, hook: Any) -> Tensor:
        if on_forward is not None and on_forward(act, hook) is False:
            untapped.add(hook.name)
            return act  # no gradient wanted there
        return taps.tap(act, row_taps(on_forward, on_grad, hook))

    if taps_row_local(on_forward, on_grad):
        row_local(tap)

    with frozen_parameters(model), torch.enable_grad():
        with model.hooks(fwd_hooks=[(n, tap) for n in names]):
            out = model(batch, **forward_kwargs)
        per_graph = metric(out, batch)
        del out  # (what only the output holds goes before a check forward)
        total = copy_means(per_graph, k).sum()
        if total.requires_grad:
            taps.backward(total)
    if not total.requires_grad:  # no tapped hook reaches the metric: fine if an untapped one does
        check_metric_reads(model, batch, k, metric, untapped, forward_kwargs)
    return per_graph.detach()

