"""The sums behind :func:`~hookgnn.attribution.edges.eap`, streamed over graphs and IG steps.

A weight edge :math:`i \\to j` of a link needs only one number per pair of neurons,

.. math:: S_{ij} = \\frac{1}{N K} \\sum_{g=1}^{N} \\sum_{k=1}^{K} \\sum_{r \\in g}
    \\Delta a_{\\rho(r), i}\\; \\gamma_{g,k;\\, r, j},

(``N`` graphs, ``K`` IG steps, :math:`\\Delta a = a^s - a^b` at the link's source hook,
:math:`\\gamma` the gradient of graph ``g``'s metric at step ``k`` that the link uses: at its
destination, its ``pre`` hook, masked where a relu is active, or times
:math:`\\varphi'(a_{src})`), and a message edge only its row
:math:`\\sum_f \\Delta a_{e f} \\bar g_{e f}`. Since :math:`\\Delta a` does not depend on
the step, the sum over steps is taken first, on the gradient, as the backward reaches each
hook (:mod:`hookgnn.cache.grad_taps`); the sum over rows is one matrix product
:math:`\\Delta a^\\top \\Gamma` per chunk of graphs. Nothing of size (rows x steps) outlives
its chunk, and only the hooks the links and carriers name are cached or tapped.

The graphs go through in chunks of consecutive graphs whose ``K`` interpolated copies hold
about ``rows_per_forward`` nodes + edges (all ``K`` in one forward + backward when they fit,
else in several); memory is flat in the number of graphs. For EAP-IG the base and source runs
that give :math:`\\Delta a` are one forward of two copies per larger range of graphs (about
``rows_per_forward`` rows, :func:`_differences`), whose differences are cut chunk by chunk
(where every hook's rows are nodes, edges or graphs). Chunking needs every hook used to
have rows that follow the graphs (:data:`~hookgnn.patching.copies.COPY_AXES`); otherwise the
whole batch runs at once, one copy per forward. It also needs the model's graphs to be
independent of each other in a batch (as every copy-batched estimator of hookgnn does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from hookgnn.attribution.graph_chunks import SLICEABLE, _chunks, _copies, _Ranges, _with_fields_of
from hookgnn.attribution.interpolate import interpolated_fields
from hookgnn.attribution.streamed import _tapped_run
from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.metrics.per_graph import Metric
from hookgnn.metrics.targets import clean_targets
from hookgnn.nn.wiring import ResolvedLink
from hookgnn.ops.heap import warm_allocator
from hookgnn.patching.copies import COPY_AXES, per_copy

#: Default work per forward of :func:`link_sums`: nodes + edges over all copies in one batch.
ROWS_PER_FORWARD = 1 << 15


def derivative(fn: Callable[[Tensor], Tensor], a: Tensor) -> Tensor:
    """:math:`\\varphi'(a)` of an elementwise ``fn``, entry by entry.

    >>> derivative(torch.tanh, torch.zeros(2)).tolist()
    [1.0, 1.0]
    """
    with torch.enable_grad():
        z = a.detach().requires_grad_()
        (d,) = torch.autograd.grad(fn(z).sum(), z)
    return d


@dataclass
class LinkSums:
    """What :func:`link_sums` returns: per link (by position) ``[d_src, d_dst]`` for a weight
    link and ``[d]`` for an elementwise or scatter one; per carrier hook its ``[rows]`` scores
    in the batch's row order; the base run's metric (mean over graphs)."""

    links: list[Tensor]
    rows: dict[str, Tensor]
    baseline: float


def _uses(link: ResolvedLink) -> tuple[str, str]:
    """``(kind, hook)`` of the gradient that multiplies a link's source differences: ``"plain"``,
    ``"active"`` (where the hook's activation is > 0) or ``"through"`` (times the derivative of
    the link's activation at its source)."""
    if link.rows == "scatter":
        return "plain", link.src  # the gradient at the message already selects the winning edge
    if link.act == "identity":
        return "plain", link.dst
    if link.weight is None:
        if link.act == "relu":
            return "active", link.dst
        if callable(link.act):
            return "through", link.dst
    elif link.pre is not None:
        return "plain", link.pre
    elif link.act == "relu":
        return "active", link.dst
    raise ValueError(f"link {link.name} of round {link.round} applies {link.act} after its weight and names no pre "
                     "hook point (the pre-activation), so the activation's derivative is unknown; give it pre=...")


def link_sums(
    model: HookedRootModule,
    base: Graph,
    src: Graph,
    clean: Graph,
    metric: Metric,
    links: Sequence[ResolvedLink],
    carriers: Sequence[str],
    alphas: Sequence[float],
    forward_kwargs: dict[str, Any],
    rows_per_forward: int = ROWS_PER_FORWARD,
) -> LinkSums:
    """The sums of the module docstring for ``links`` and the row scores of ``carriers``, the
    metric reading ``clean``'s targets; ``alphas`` empty: the gradient at the base run itself
    (EAP), else the input interpolation points of EAP-IG."""
    if rows_per_forward < 1:
        raise ValueError(f"rows_per_forward must be >= 1, got {rows_per_forward}")
    if base.device.type == "cpu":
        warm_allocator()  # each chunk's buffers reused from the heap, not page-faulted in afresh
    uses = [_uses(link) for link in links]
    deltas = sorted({link.src for link in links} | set(carriers))
    plain = sorted({h for kind, h in uses if kind == "plain"} | set(carriers))
    active = sorted({h for kind, h in uses if kind == "active"})
    through = [(link, i) for i, (link, (kind, _)) in enumerate(zip(links, uses)) if kind == "through"]
    through_src = sorted({link.src for link, _ in through})
    taps = sorted(set(plain) | set(active) | {h for kind, h in uses if kind == "through"} | set(through_src))
    steps = max(len(alphas), 1)
    points = model.hook_points(sorted(set(taps) | set(deltas)))
    follows = all(p.axis in COPY_AXES for p in points)
    axes = {p.name: p.axis for p in points}
    # EAP-IG whose differences can be cut graph by graph: base and source run once per larger range
    # of graphs (two copies), the IG copies per chunk within it
    shared = bool(alphas) and follows and all(axes[h] in SLICEABLE for h in deltas)
    ranges = _chunks(base, rows_per_forward, 2 if shared else steps) if follows else [(0, base.num_graphs)]
    cuts = None if len(ranges) == 1 and not shared else [_Ranges(base)] + [_Ranges(g) for g in (src, clean)]
    fields = interpolated_fields(model, base, src) if alphas else []
    sums: list[Tensor | None] = [None] * len(links)
    rows = {c: torch.zeros(base.num_edges, dtype=base.x.dtype, device=base.device) for c in carriers}
    baseline = 0.0
    n = base.num_graphs
    job = (model, deltas, plain, active, through, through_src, taps, alphas, fields, follows, rows_per_forward,
           forward_kwargs)
    for lo, hi in ranges:
        b, s, c = (base, src, clean) if cuts is None else (r.cut(lo, hi) for r in cuts)
        at = None if cuts is None else cuts[0].edges(lo, hi)
        if not shared:
            delta, grads, base_sum = _chunk(job, b, s, c, metric)
            baseline += base_sum
            _add(sums, rows, links, uses, carriers, b, delta, grads, b.num_graphs / (n * steps), at)
            continue
        delta, base_sum = _differences(model, b, s, clean_targets(metric, c), deltas, forward_kwargs)
        baseline += base_sum
        inner = _chunks(b, rows_per_forward, steps)
        parts = None if len(inner) == 1 else [_Ranges(g) for g in (b, s, c)]
        for lo2, hi2 in inner:
            bb, ss, cc = (b, s, c) if parts is None else (r.cut(lo2, hi2) for r in parts)
            dd = delta if parts is None else {h: v[parts[0].rows(axes[h], lo2, hi2)] for h, v in delta.items()}
            at2 = at if parts is None else at[parts[0].edges(lo2, hi2)]  # type: ignore[index]
            _, grads, _ = _chunk(job, bb, ss, cc, metric, dd)
            _add(sums, rows, links, uses, carriers, bb, dd, grads, bb.num_graphs / (n * steps), at2)
    out = [torch.zeros(0) if v is None else v for v in sums]
    return LinkSums(out, rows, baseline / max(n, 1))


def _add(sums: list[Tensor | None], rows: dict[str, Tensor], links: Sequence[ResolvedLink],
         uses: list[tuple[str, str]], carriers: Sequence[str], b: Graph, delta: dict[str, Tensor],
         grads: dict[tuple[str, str, str | None], Tensor], scale: float, at: Tensor | None) -> None:
    """Add one chunk's terms (graphs ``b``, their edges at positions ``at`` of the batch; ``None``: all,
    in order) to the link sums and the carriers' row scores."""
    src_idx, dst_idx = b.edge_index
    for i, (link, (kind, hook)) in enumerate(zip(links, uses)):
        if link.src not in delta:
            raise ValueError(f"link {link.name} of round {link.round} reads hook {link.src}, which did not fire in "
                             "the forward")
        d_a = delta[link.src]
        g = grads.get((kind, hook, link.src if kind == "through" else None))
        if g is None:  # the metric does not depend on it
            g = torch.zeros(d_a.shape[0] if link.rows in ("same", "scatter") else b.num_edges,
                            *([link.weight.shape[0]] if link.weight is not None else d_a.shape[1:]),
                            dtype=d_a.dtype, device=d_a.device)
        r = d_a if link.rows in ("same", "scatter") else d_a[src_idx if link.rows == "src" else dst_idx]
        v = (r * g).sum(0) if link.weight is None or link.rows == "scatter" else r.T @ g
        v = v * scale
        sums[i] = v if sums[i] is None else sums[i].add_(v)  # type: ignore[union-attr]
    for hook in carriers:
        g = grads.get(("plain", hook, None))
        if g is None:
            continue
        p = delta[hook] * g
        r = (p if p.dim() == 1 else p.flatten(1).sum(1)) * scale
        if at is None:
            rows[hook] = r
        else:
            rows[hook][at] = r


def _differences(model: HookedRootModule, base: Graph, src: Graph, metric: Metric, deltas: list[str],
                 fwd: dict[str, Any]) -> tuple[dict[str, Tensor], float]:
    """Base and source in one forward: the differences at ``deltas`` and the sum over the graphs of
    the base run's metric."""
    pair = Graph.collate([base, src])
    with torch.no_grad():
        out, cache = model.run_with_cache(pair, names_filter=deltas, **fwd)
        base_sum = float(metric(out, pair)[:base.num_graphs].sum())
    delta = {}
    for h in cache.keys():
        a = per_copy(cache[h], 2)
        delta[h] = a[1] - a[0]
    return delta, base_sum


def _chunk(
    job: tuple[Any, ...], base: Graph, src: Graph, clean: Graph, metric: Metric,
    delta: dict[str, Tensor] | None = None,
) -> tuple[dict[str, Tensor], dict[tuple[str, str, str | None], Tensor], float]:
    """One chunk of graphs: the differences at ``deltas`` (made here unless ``delta`` is given),
    the gradient sums over all steps, and the sum over its graphs of the base run's metric (0 where
    ``delta`` is given: its forward made it)."""
    model, deltas, plain, active, through, through_src, taps, alphas, fields, follows, budget, fwd = job
    source: dict[str, Tensor] = {}
    base_sum = 0.0
    if delta is not None:
        pass
    elif alphas and follows:
        delta, base_sum = _differences(model, base, src, clean_targets(metric, clean), deltas, fwd)
    else:
        delta = {}
        with torch.no_grad():
            _, cache = model.run_with_cache(src, names_filter=deltas, **fwd)
        source = dict(cache.items())
        del cache

    def difference(act: Tensor, hook: Any) -> None:
        if hook.name not in source:
            raise ValueError(f"{hook.name} fired more than once in one forward (a module called twice?): eap needs "
                             "each hook point once per forward")
        delta[hook.name] = source.pop(hook.name).to(act) - act.detach()  # type: ignore[index]

    grads: dict[tuple[str, str, str | None], Tensor] = {}
    src_idx, dst_idx = base.edge_index

    def run(batch: Graph, k: int, first: bool) -> Tensor:
        masks: dict[str, Tensor] = {}
        slopes: dict[str, Tensor] = {}

        def on_forward(act: Tensor, hook: Any) -> None:
            name = hook.name
            if first and name in source:
                difference(act, hook)
            if name in masks or name in slopes:
                raise ValueError(f"{name} fired more than once in one forward (a module called twice?): eap needs "
                                 "each hook point once per forward")
            if name in active:
                masks[name] = act.detach() > 0
            if name in through_src:  # a copy: the model may still edit the activation in place
                slopes[name] = act.detach().clone()

        def add(key: tuple[str, str, str | None], g: Tensor) -> None:
            total = g if k == 1 else per_copy(g, k).sum(0)
            if key in grads:
                grads[key].add_(total)
            else:  # autograd may hand one gradient to several hooks: own the buffer before adding in place
                grads[key] = total.clone() if k == 1 and len(alphas) > 1 else total

        def on_grad(name: str, g: Tensor) -> None:
            if name in plain:
                add(("plain", name, None), g)
            if name in active:
                add(("active", name, None), g * masks[name])
            for link, _ in through:
                if link.dst == name:
                    a = per_copy(slopes[link.src], k)
                    a = a if link.rows == "same" else a[:, src_idx if link.rows == "src" else dst_idx]
                    assert callable(link.act)
                    add(("through", name, link.src), (per_copy(g, k) * derivative(link.act, a)).reshape(g.shape))

        m = clean_targets(metric, clean) if k == 1 and batch is base else _with_fields_of(metric, batch, clean, k)
        return _tapped_run(model, batch, k, m, sorted(set(taps) | set(deltas)) if first else taps, fwd,
                           on_forward, on_grad)

    if not alphas:  # EAP: gradient at the base run, differences made in its own forward
        per_graph = run(base, 1, True)
        return delta, grads, float(per_graph.sum())
    if not follows:
        with torch.no_grad(), model.hooks(fwd_hooks=[(h, difference) for h in deltas]):
            base_sum = float(clean_targets(metric, clean)(model(base, **fwd), base).sum())
    rows = base.num_nodes + base.num_edges
    per_forward = max(1, min(len(alphas), budget // max(rows, 1))) if follows else 1
    for start in range(0, len(alphas), per_forward):
        part = alphas[start:start + per_forward]
        run(_copies(base, src, part, fields), len(part), False)
    return delta, grads, base_sum
