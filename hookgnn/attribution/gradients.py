"""Attribution patching, EAP and EAP-IG: gradient estimates of every patching effect at once.

With a base run (``b``) and a source run (``s``) (``"denoising"``: base = corrupted,
source = clean; ``"noising"``: the reverse), the effect of patching activation entry
:math:`a` is estimated to first order (Nanda 2023, Syed et al. 2023) by

.. math:: m(b;\\, a \\leftarrow a^s) - m(b) \\approx (a^s - a^b)\\, \\bar g, \\qquad
    \\bar g = \\partial m / \\partial a \\text{ at } b,

and, for EAP-IG (Hanna et al. 2024), with :math:`\\bar g` averaged over
``ig_steps`` points of a straight path from the base to the source: (i) between the *inputs*
(``x``, ``edge_attr``, ``graph_attr`` and the floating fields the model reads as inputs,
:func:`interpolated_fields`; the structure is shared), or (ii) between the
activations at one hook. Midpoint rule: :math:`\\alpha_k = (k + 1/2) / K` with ``K = ig_steps``.
All steps run in one batched forward + backward (copies in one disjoint union).

:class:`Attribution` keeps the per-entry products :math:`(a^s - a^b) \\odot \\bar g`
for every hook, summed to rows (nodes / edges) or to features (neurons) on demand, and
the base run's metric :math:`m(b)` as ``baseline``: every score is an estimated effect,
the quantity an exact sweep returns (:mod:`hookgnn.patching.results`).
:func:`~hookgnn.attribution.edges.eap` turns the same quantities into scores of computational
edges (:mod:`hookgnn.attribution.edges`, its sums streamed by :mod:`hookgnn.attribution.edge_sums`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from hookgnn._deprecated import warn_deprecated
from hookgnn.attribution.edge_sums import derivative
from hookgnn.attribution.interpolate import interpolate, interpolated_fields
from hookgnn.attribution.streamed import check_keep, ig_alphas, streamed_attribution
from hookgnn.cache.grad_taps import frozen_parameters
from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule, NameFilter
from hookgnn.metrics.per_graph import Metric
from hookgnn.metrics.targets import clean_targets
from hookgnn.ops.block_cache import block_cache_for
from hookgnn.ops.compiled import pool_limit
from hookgnn.patching.activation import base_and_source, check_same_structure
from hookgnn.patching.copies import chunks, copies_per_forward, disjoint_union, metric_per_copy, per_copy
from hookgnn.patching.results import DEFAULT_DIRECTION, Attribution, Direction, Keep
from hookgnn.ops.threads import threads_by_workload


#: An elementwise link whose gradient through its activation is wanted: (src, dst, rows, act).
Through = tuple[str, str, str, Callable[[Tensor], Tensor]]


def _grads_over_copies(
    model: HookedRootModule, graphs: list[Graph], metric: Metric, names: NameFilter, hook_fns: Sequence[Any],
    chunk: int, forward_kwargs: dict[str, Any], through: Sequence[Through] = (), active: Sequence[str] = (),
    keep_first: bool = False,
) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, str], dict[str, Tensor], dict[tuple[str, str], Tensor],
           float | None]:
    """Mean over ``graphs`` (same structure) of d metric / d activation; for the hooks in
    ``active`` also of it where the activation is > 0; the means of ``through`` (see
    :class:`Attribution`); with ``keep_first``, the activations and the metric (mean over
    its graphs) of the first graph, else ``None`` for the metric.

    Sums are taken in place chunk by chunk, and a single graph's gradients are returned
    as autograd made them (no copies, no division). A chunk holds one graph where a hook's
    rows do not follow the copies (:func:`~hookgnn.patching.copies.copies_per_forward`)."""
    linked = sorted({h for s, d, _, _ in through for h in (s, d)})
    chunk = min(copies_per_forward(model, names, chunk), copies_per_forward(model, linked, chunk))
    first: dict[str, Tensor] = {}
    total: dict[str, Tensor] = {}
    positive: dict[str, Tensor] = {}
    axes: dict[str, str] = {}
    along: dict[tuple[str, str], Tensor] = {}
    first_metric: float | None = None
    wanted = set(active)

    def add(acc: dict[Any, Tensor], key: Any, value: Tensor) -> None:
        if key in acc:
            acc[key].add_(value)
        else:
            # autograd may hand one gradient tensor to several hooks (both terms of a sum): a
            # running sum must own its buffer, or adding the next chunk in place adds it twice
            acc[key] = value.clone() if len(graphs) > 1 and k == 1 else value

    for start, part in chunks(graphs, chunk):
        k = len(part)
        batch = disjoint_union(part)
        grad_metric = lambda out: metric_per_copy(metric, out, batch, k).sum()  # noqa: E731
        # Frozen parameters: the same activation gradients, without the saved inputs of weight gradients.
        with frozen_parameters(model), model.hooks(fwd_hooks=[fn(start, k) for fn in hook_fns]):
            out, cache = model.run_with_cache(batch, names_filter=names, grad_metric=grad_metric, **forward_kwargs)
        assert cache.grads is not None
        if keep_first and start == 0:
            with torch.no_grad():
                first_metric = float(metric_per_copy(metric, out, batch, k)[0])
        del out
        view = (lambda t: t) if k == 1 else (lambda t: per_copy(t, k))  # noqa: E731 (one copy: autograd's own)
        over_copies = (lambda t: t) if k == 1 else (lambda t: t.sum(0))  # noqa: E731
        for h, g in cache.grads.items():
            axes[h] = cache.axes[h]
            add(total, h, over_copies(view(g)))
            if h in wanted:
                add(positive, h, over_copies(view(g) * (view(cache[h]) > 0)))
            if keep_first and start == 0:
                first[h] = cache[h] if k == 1 else view(cache[h])[0].clone()
        src_idx, dst_idx = part[0].edge_index
        for s, d, rows, fn in through:
            a = per_copy(cache[s], k)
            a = a if rows == "same" else a[:, src_idx if rows == "src" else dst_idx]
            g = cache.grads[d].reshape(k, *a.shape[1:])
            add(along, (s, d), (g * derivative(fn, a)).sum(0))
        del cache
    n = len(graphs)
    if n > 1:
        for acc in (total, positive, along):
            for v in acc.values():
                v.div_(n)
    return total, positive, axes, first, along, first_metric


def _deltas(model: HookedRootModule, base: Graph | dict[str, Tensor], src: Graph, names: Sequence[str],
            fwd: dict[str, Any], metric: Metric | None = None) -> tuple[dict[str, Tensor], float | None]:
    """``a_src - a_base`` per hook (``base`` is a graph to run, or its activations already cached;
    a dict given is emptied as the differences are made, so both runs are never held twice), and
    the ``metric`` of the base run (mean over graphs) when it is run here and ``metric`` is given."""
    baseline = None
    with torch.no_grad():
        if isinstance(base, Graph):
            out, cache = model.run_with_cache(base, names_filter=list(names), **fwd)
            acts = dict(cache.items())
            baseline = None if metric is None else float(metric(out, base).mean())
            del out, cache
        else:
            acts = base
        source = dict(model.run_with_cache(src, names_filter=list(names), **fwd)[1].items())
    return {h: source.pop(h) - acts.pop(h) for h in names}, baseline


@threads_by_workload
def attribute(
    model: HookedRootModule,
    clean: Graph,
    corrupted: Graph,
    metric: Metric,
    *,
    ig_steps: int = 0,
    names_filter: NameFilter = None,
    direction: Direction = DEFAULT_DIRECTION,
    keep: Keep = "all",
    chunk: int = 32,
    offload: str | os.PathLike[str] | None = None,
    through: Sequence[Through] = (),
    active: Sequence[str] = (),
    **forward_kwargs: Any,
) -> Attribution:
    """Gradient estimates of the effect of patching every entry of every hook (``names_filter``: which).

    ``ig_steps=0`` is attribution patching (AtP): the gradient at the base run, one
    forward+backward (base) and one forward (source). ``ig_steps=K > 0`` is EAP-IG on the
    inputs: the gradient averaged over ``base + alpha_k (source - base)`` (``x``,
    ``edge_attr``, ``graph_attr`` and :func:`interpolated_fields`; the structure is
    shared), :math:`\\alpha_k = (k + 1/2)/K` (:func:`~hookgnn.attribution.streamed.ig_alphas`),
    ``K`` copies in ``ceil(K/chunk)`` batched forward+backward passes. Either way the
    estimate of patching entry :math:`a` is :math:`(a^s - a^b)\\,\\bar g`.

    ``keep="all"`` returns ``delta`` and ``grad`` of every hook. ``"entries"``, ``"rows"``
    and ``"features"`` return only their products: whole (``by_entry``), summed per row and
    per feature (``by_row`` and ``by_feature``) or summed per feature (``by_feature``), made
    hook by hook as the backward reaches it, which needs far less memory
    (:mod:`hookgnn.attribution.streamed`); ``offload=FOLDER`` (checked first) also keeps the
    source activations and the differences in temporary files there while it runs, and the compiled
    kernel keeps no freed blocks meanwhile (:func:`~hookgnn.ops.compiled.pool_limit`); without it, on a
    graph of 65,536+ edges or nodes these keeps run inside :func:`~hookgnn.ops.block_cache.block_cache`
    (freed CPU blocks reused, at most ``HOOKGNN_BLOCK_CACHE_MB`` idle, default 2 GiB). Every
    ``keep`` returns ``baseline``, the base run's metric. ``active``: hooks whose gradient
    where the activation is positive is also averaged (``Attribution.grad_active``, for links
    through a relu); ``through``: elementwise links whose
    :math:`\\overline{\\varphi'(a_{src}) g_{dst}}` is averaged (both need ``keep="all"``).
    Raises ``ValueError`` if ``ig_steps < 0``.

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.metrics.per_graph import OutputSum
    >>> from hookgnn.spec import FeatureSpec
    >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=2)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> attr = attribute(model, g, g.replace(x=torch.randn(3, 1)), OutputSum("d"), ig_steps=4)
    >>> attr.rows(["layers.0.hook_update", "layers.1.hook_update"]).axes
    ('round', 'node')

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param clean: the clean graph or batch (:class:`~hookgnn.graph.Graph`); the metric reads its targets.
    :param corrupted: the corrupted graph or batch: the same nodes and edges as ``clean`` (activations are swapped
        row for row).
    :param metric: ``metric(output, graph)`` -> one value per graph (:mod:`hookgnn.metrics`), averaged over the
        batch.
    :param ig_steps: 0: attribution patching; ``K > 0``: EAP-IG with ``K`` interpolation steps.
    :param names_filter: which hooks to attribute: a name, names or a predicate (default: every hook).
    :param direction: ``"denoising"`` (clean values patched into the corrupted run, the default) or ``"noising"``
        (corrupted values into the clean run).
    :param keep: ``"all"`` (``delta`` and ``grad``), ``"entries"``, ``"rows"`` or ``"features"`` (only the
        products, streamed).
    :param chunk: interpolation copies per batched forward+backward (EAP-IG).
    :param offload: a folder for temporary files holding the source activations and differences while it runs
        (with ``keep != "all"``).
    :param through: elementwise links ``(src, dst, name, phi)`` whose :math:`\\overline{\\varphi'(a_{src}) g_{dst}}`
        is averaged (``keep="all"``).
    :param active: hooks whose gradient where the activation is positive is also averaged (``keep="all"``).
    :param forward_kwargs: keywords for every forward of the model, e.g. ``steps=8``.
    """
    alphas = ig_alphas(ig_steps)
    keep = check_keep(keep, offload)
    if keep != "all" and (through or active):
        raise ValueError("through= and active= need keep='all' (they average gradients, which other keeps drop)")
    check_same_structure(clean, corrupted)
    metric = clean_targets(metric, clean)
    base, src = base_and_source(clean, corrupted, direction)
    if keep != "all":
        # reuse freed [E, d] blocks on large graphs, but keep no freed memory where offload= asks for the least
        with block_cache_for(base.num_edges, base.num_nodes) if offload is None else pool_limit(0):
            return streamed_attribution(model, base, src, metric, names_filter, alphas, keep, chunk, offload,
                                        direction, forward_kwargs)
    fields = interpolated_fields(model, base, src) if alphas else []
    graphs = [interpolate(base, src, a, fields) for a in alphas] if alphas else [base]
    grad, positive, axes, first, along, at_base = _grads_over_copies(
        model, graphs, metric, names_filter, (), chunk, forward_kwargs, through, active, keep_first=not alphas)
    base_acts: Graph | dict[str, Tensor] = first if not alphas else base
    delta, baseline = _deltas(model, base_acts, src, list(grad), forward_kwargs, metric)
    baseline = at_base if baseline is None else baseline
    assert baseline is not None
    return Attribution(axes, baseline, direction, delta=delta, grad=grad, grad_active=positive, grad_through=along)


def attribution_patch(
    model: HookedRootModule,
    clean: Graph,
    corrupted: Graph,
    metric: Metric,
    names_filter: NameFilter = None,
    direction: Direction = DEFAULT_DIRECTION,
    keep: Keep = "all",
    offload: str | os.PathLike[str] | None = None,
    **forward_kwargs: Any,
) -> Attribution:
    """Deprecated: ``attribute(model, clean, corrupted, metric)`` (``ig_steps=0``)."""
    warn_deprecated("attribution_patch", "attribute(model, clean, corrupted, metric) (ig_steps=0)")
    return attribute(model, clean, corrupted, metric, ig_steps=0, names_filter=names_filter, direction=direction,
                     keep=keep, offload=offload, **forward_kwargs)


def integrated_gradients(
    model: HookedRootModule,
    clean: Graph,
    corrupted: Graph,
    metric: Metric,
    ig_steps: int = 16,
    names_filter: NameFilter = None,
    direction: Direction = DEFAULT_DIRECTION,
    chunk: int = 32,
    through: Sequence[Through] = (),
    active: Sequence[str] = (),
    keep: Keep = "all",
    offload: str | os.PathLike[str] | None = None,
    **forward_kwargs: Any,
) -> Attribution:
    """Deprecated: ``attribute(model, clean, corrupted, metric, ig_steps=16)``."""
    warn_deprecated("integrated_gradients", "attribute(model, clean, corrupted, metric, ig_steps=16)")
    return attribute(model, clean, corrupted, metric, ig_steps=ig_steps, names_filter=names_filter,
                     direction=direction, keep=keep, chunk=chunk, offload=offload, through=through, active=active,
                     **forward_kwargs)


def integrated_gradients_at(
    model: HookedRootModule,
    clean: Graph,
    corrupted: Graph,
    metric: Metric,
    hook: str,
    ig_steps: int = 16,
    direction: Direction = DEFAULT_DIRECTION,
    chunk: int = 32,
    **forward_kwargs: Any,
) -> Attribution:
    """EAP-IG interpolating the activations at ``hook`` (other activations recomputed).

    Copy ``k`` runs the base graph with ``a_hook = a^b + alpha_k (a^s - a^b)``; the
    returned :class:`Attribution` holds that hook only. Its entries sum to
    ``m(b; hook <- a^s) - m(b)`` as ``ig_steps`` grows (completeness). Raises
    ``ValueError`` if ``ig_steps < 1``.
    """
    if ig_steps < 1:
        raise ValueError(f"ig_steps must be >= 1 for activation interpolation, got {ig_steps}")
    check_same_structure(clean, corrupted)
    metric = clean_targets(metric, clean)
    base, src = base_and_source(clean, corrupted, direction)
    with torch.no_grad():
        base_out, c_base = model.run_with_cache(base, names_filter=[hook], **forward_kwargs)
        baseline = float(metric(base_out, base).mean())
    delta, _ = _deltas(model, {hook: c_base[hook]}, src, [hook], forward_kwargs)
    alphas = torch.tensor(ig_alphas(ig_steps))

    name = hook

    def make(start: int, k: int) -> Any:
        """The hook for copies ``start .. start + k`` of one chunk: copy ``j`` at ``alpha_{start + j}``."""
        def fn(act: Tensor, hook: Any) -> Tensor:
            a = alphas[start:start + k].to(act).reshape(-1, *([1] * act.dim()))
            path = c_base[name].to(act) + a * delta[name].to(act)  # [k, rows, ...]
            return path.reshape(act.shape)
        return name, fn

    graphs = [base] * ig_steps
    grad, active, axes, _, _, _ = _grads_over_copies(model, graphs, metric, [hook], (make,), chunk, forward_kwargs)
    return Attribution(axes, baseline, direction, delta=delta, grad=grad, grad_active=active)


# eap and message_edge_scores live in hookgnn.attribution.edges; re-exported for the old module alias
from hookgnn.attribution.edges import EdgeLevel, eap, message_edge_scores  # noqa: E402
