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
else in several); memory is flat in the number of graphs. Chunking needs every hook used to
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

from hookgnn.attribution.interpolate import interpolate, interpolated_fields
from hookgnn.attribution.streamed import _tapped_run
from hookgnn.graph import Field, Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.metrics.per_graph import Metric
from hookgnn.metrics.targets import clean_targets
from hookgnn.nn.wiring import ResolvedLink
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


def _chunks(base: Graph, budget: int, copies: int) -> list[tuple[int, int]]:
    """Ranges of consecutive graphs whose ``copies`` copies hold about ``budget`` rows (at least one graph)."""
    n_edges = torch.bincount(base.edge_batch, minlength=base.num_graphs)
    sizes = (base.ptr.diff() + n_edges).tolist()
    out, start, total = [], 0, 0
    for i, s in enumerate(sizes):
        if i > start and (total + s) * copies > budget:
            out.append((start, i))
            start, total = i, 0
        total += s
    out.append((start, len(sizes)))
    return out


class _Ranges:
    """Consecutive graphs ``lo .. hi`` of a batch as one batch, cut without copying the rest
    (what ``Graph.collate(batch.split()[lo:hi])`` gives, without a ``Graph`` per graph)."""

    def __init__(self, g: Graph) -> None:
        self.g = g
        counts = torch.bincount(g.edge_batch, minlength=g.num_graphs)
        self.order = torch.argsort(g.edge_batch, stable=True)
        self.edge_ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)]).tolist()
        self.ptr = g.ptr.tolist()

    def edges(self, lo: int, hi: int) -> Tensor:
        """The positions in the batch of the edges of graphs ``lo .. hi``, in the order of the cut."""
        return self.order[self.edge_ptr[lo]:self.edge_ptr[hi]]

    def cut(self, lo: int, hi: int) -> Graph:
        g, n0, n1 = self.g, self.ptr[lo], self.ptr[hi]
        idx = self.edges(lo, hi)
        spans = {"node": (n0, n1), "graph": (lo, hi)}

        def part(f: Field) -> Field:
            if f.location == "edge":
                return Field(f.value.index_select(f.item_dim, idx), f.location, f.time)
            a, b = spans[f.location]
            return Field(f.value.narrow(f.item_dim, a, b - a), f.location, f.time)

        out = object.__new__(Graph)  # rows of a valid batch, offsets kept inside each graph: valid
        out.x = g.x[n0:n1]
        out.edge_index = g.edge_index[:, idx] - n0
        out.edge_attr = None if g.edge_attr is None else g.edge_attr[idx]
        out.graph_attr = None if g.graph_attr is None else g.graph_attr[lo:hi]
        out.ptr = g.ptr[lo:hi + 1] - n0
        out.batch = g.batch[n0:n1] - lo
        out.fields = {k: part(f) for k, f in g.fields.items()}
        out.meta = dict(g.meta)
        return out


def _union(base: Graph, src: Graph, alphas: Sequence[float], fields: Sequence[str]) -> Graph:
    """The ``len(alphas)`` interpolated copies of ``base`` (towards ``src``) in one disjoint union,
    entry for entry :func:`~hookgnn.attribution.interpolate.interpolate` of each."""
    if fields or len(alphas) == 1:
        parts = [interpolate(base, src, a, fields) for a in alphas]
        return parts[0] if len(parts) == 1 else Graph.collate(parts)
    union = Graph.collate([base] * len(alphas))

    def lerp(a: Tensor | None, b: Tensor | None) -> Tensor | None:
        if a is None or b is None:
            return None
        w = torch.tensor(alphas, dtype=a.dtype, device=a.device).reshape(-1, *([1] * a.dim()))
        out = (a + w * (b - a)).reshape(-1, *a.shape[1:])
        if not bool(torch.isfinite(out).all()):
            raise ValueError("an interpolated input is not finite (base and source features too large?)")
        return out

    # the union of copies is valid (Graph.collate) and lerping finite features keeps it so: set them
    # without checking every field of every copy again (most of the time of a small chunk)
    union.x = lerp(base.x, src.x)
    union.edge_attr = lerp(base.edge_attr, src.edge_attr)
    union.graph_attr = lerp(base.graph_attr, src.graph_attr)
    return union


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
    ranges = _chunks(base, rows_per_forward, steps) if follows else [(0, base.num_graphs)]
    whole = len(ranges) == 1
    cuts = None if whole else [_Ranges(base)] + [_Ranges(g) for g in (src, clean)]
    sums: list[Tensor | None] = [None] * len(links)
    rows = {c: torch.zeros(base.num_edges, dtype=base.x.dtype, device=base.device) for c in carriers}
    baseline = 0.0
    n = base.num_graphs
    for lo, hi in ranges:
        b, s, c = (base, src, clean) if cuts is None else (r.cut(lo, hi) for r in cuts)
        m = clean_targets(metric, c)
        delta, grads, base_sum = _chunk(model, b, s, m, deltas, plain, active, through, through_src, taps, alphas,
                                        follows, rows_per_forward, forward_kwargs)
        baseline += base_sum
        scale = b.num_graphs / (n * steps)
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
            if cuts is None:
                rows[hook] = r
            else:
                rows[hook][cuts[0].edges(lo, hi)] = r
    out = [torch.zeros(0) if v is None else v for v in sums]
    return LinkSums(out, rows, baseline / max(n, 1))


def _chunk(
    model: HookedRootModule, base: Graph, src: Graph, metric: Metric, deltas: list[str], plain: list[str],
    active: list[str], through: list[tuple[ResolvedLink, int]], through_src: list[str], taps: list[str],
    alphas: Sequence[float], follows: bool, budget: int, fwd: dict[str, Any],
) -> tuple[dict[str, Tensor], dict[tuple[str, str, str | None], Tensor], float]:
    """One chunk of graphs: the differences at ``deltas``, the gradient sums over all steps, and
    the sum over its graphs of the base run's metric."""
    delta: dict[str, Tensor] = {}
    source: dict[str, Tensor] = {}
    if alphas and follows:  # base and source in one forward: the differences and the base metric
        pair = Graph.collate([base, src])
        with torch.no_grad():
            out, cache = model.run_with_cache(pair, names_filter=deltas, **fwd)
            base_sum = float(metric(out, pair)[:base.num_graphs].sum())
        for h in cache.keys():
            a = per_copy(cache[h], 2)
            delta[h] = a[1] - a[0]
        del cache, out
    else:
        with torch.no_grad():
            _, cache = model.run_with_cache(src, names_filter=deltas, **fwd)
        source = dict(cache.items())
        del cache

    def difference(act: Tensor, hook: Any) -> None:
        if hook.name not in source:
            raise ValueError(f"{hook.name} fired more than once in one forward (a module called twice?): eap needs "
                             "each hook point once per forward")
        delta[hook.name] = source.pop(hook.name).to(act) - act.detach()

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

        return _tapped_run(model, batch, k, metric, sorted(set(taps) | set(deltas)) if first else taps, fwd,
                           on_forward, on_grad)

    if not alphas:  # EAP: gradient at the base run, differences made in its own forward
        per_graph = run(base, 1, True)
        return delta, grads, float(per_graph.sum())
    if not follows:
        with torch.no_grad(), model.hooks(fwd_hooks=[(h, difference) for h in deltas]):
            base_sum = float(metric(model(base, **fwd), base).sum())
    fields = interpolated_fields(model, base, src)
    rows = base.num_nodes + base.num_edges
    per_forward = max(1, min(len(alphas), budget // max(rows, 1))) if follows else 1
    for start in range(0, len(alphas), per_forward):
        part = alphas[start:start + per_forward]
        run(_union(base, src, part, fields), len(part), False)
    return delta, grads, base_sum
