"""Activation patching sweeps: one component at a time, over (round x node / edge / neuron).

For a metric :math:`m`, a base run and a source run on graphs with the same structure,
the sweep value of component :math:`c` is its effect

.. math:: s_c = m\\big(\\text{base run with } a_c \\leftarrow a_c^{source}\\big) - m(\\text{base run})

(the same quantity the estimators of :mod:`hookgnn.attribution.gradients` and
:mod:`hookgnn.attribution.atp_star` approximate), with the direction named as in the literature:

* ``"denoising"``: clean values patched into the corrupted run (base = corrupted):
  which components are *sufficient* to restore the clean behaviour;
* ``"noising"``: corrupted values patched into the clean run (base = clean): which
  components are *necessary*.

Every patching and attribution function of hookgnn defaults to ``"denoising"``, and
every result carries its ``direction`` (see :mod:`hookgnn.patching.results`). In both
directions the metric reads its field-name targets from the *clean* graph
(:mod:`hookgnn.metrics.targets`).

A component is a row of the hook's activation (``over="row"``: a node or an edge,
following the hook's axis) or a column (``over="feature"``: one neuron at every row).
``method="loop"`` runs one forward per patch; ``method="batched"`` puts ``copies``
copies of the base graph into one disjoint-union batch (``Graph.collate``) and gives
copy ``j`` patch ``j``, reading the metric back per copy: the same numbers, far fewer
forwards; on a model that can resume a run (a ``HookedGNN``) each batch resumes the base
run at its patch's round. Hooks are attached in ``model.hooks()`` contexts and always removed.

Copy ``j``'s rows of a hook are block ``j`` of the batch's rows only where the hook's axis
follows the graphs (:data:`~hookgnn.patching.copies.COPY_AXES`). A hook on another axis
(``"none"``: e.g. the rows of a layer's own edge list with added self-loops, which the layer
appends after *every* copy's edges) is patched, and read, one copy per forward
(:func:`~hookgnn.patching.copies.copies_per_forward`):
exact, with one forward per patch. Every batched function of :mod:`hookgnn.patching`
(sweeps, ``patch_each``, EAP-IG, AtP*'s exact tail) sizes its batches with it and runs on the
copies engine of :mod:`hookgnn.patching.copies`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule, HookPoint
from hookgnn.metrics.per_graph import Metric
from hookgnn.metrics.targets import clean_targets
from hookgnn.patching.components import Component
from hookgnn.patching.copies import COPY_AXES, copies_per_forward  # noqa: F401 (still importable from here)
from hookgnn.patching.copies import chunks, disjoint_union, metric_per_copy, per_copy
from hookgnn.patching.results import DEFAULT_DIRECTION, Direction, HookScores, check_direction
from hookgnn.patching.selectors import Over, Selection
from hookgnn._deprecated import warn_deprecated
from hookgnn.ops.threads import threads_by_workload

Method = Literal["batched", "loop"]


def round_hooks(model: HookedRootModule, short: str, rounds: Sequence[int] | None = None) -> list[str]:
    """Full names of a per-round hook (``"update"``, ``"message_mlp.hook_post"``) for some rounds.

    >>> from hookgnn import HookedGNN
    >>> round_hooks(HookedGNN("mpnn", d_hidden=4, node_in=1, max_steps=2), "update")
    ['layers.0.hook_update', 'layers.1.hook_update']
    """
    rounds = range(model.num_rounds) if rounds is None else rounds
    return [model.round_hook(short, t) for t in rounds]


def base_and_source(clean: Graph, corrupted: Graph, direction: Direction) -> tuple[Graph, Graph]:
    """(graph of the run that is patched, graph whose activations are patched in)."""
    return (corrupted, clean) if check_direction(direction) == "denoising" else (clean, corrupted)


def check_same_structure(a: Graph, b: Graph) -> None:
    """Raise unless the two graphs share ``edge_index`` and ``ptr`` (needed to patch rows)."""
    if a.edge_index.shape != b.edge_index.shape or not torch.equal(a.edge_index, b.edge_index) or not torch.equal(a.ptr, b.ptr):
        raise ValueError("clean and corrupted graphs must have the same edge_index and ptr")


def patch_rows(act: Tensor, source: Tensor, copies: Sequence[int], items: Sequence[int], num_copies: int, over: Over) -> Tensor:
    """``act`` (``num_copies`` stacked copies) with item ``items[p]`` of copy ``copies[p]`` set from ``source``.

    >>> patch_rows(torch.zeros(4, 1), torch.ones(2, 1), [1], [0], 2, "row").flatten().tolist()
    [0.0, 0.0, 1.0, 0.0]
    """
    view = per_copy(act, num_copies).clone()
    js = torch.as_tensor(list(copies), device=act.device, dtype=torch.long)
    idx = torch.as_tensor(list(items), device=act.device, dtype=torch.long)
    src = source.to(act)
    if over == "row":
        view[js, idx] = src[idx]
    else:
        if act.dim() != 2:
            raise ValueError(f"feature-level patching needs a [rows, features] activation, got {tuple(act.shape)}")
        view[js, :, idx] = src[:, idx].T
    return view.reshape(act.shape)


def _items(shape: torch.Size, over: Over) -> int:
    if over == "row":
        return shape[0]
    if len(shape) < 2:
        raise ValueError(f"feature-level sweep needs a [rows, features] activation, got {tuple(shape)}")
    return shape[1]


def _item_axis(points: list[HookPoint], over: Over) -> str:
    if over == "feature":
        return "feature"
    axes = {p.axis for p in points}
    if len(axes) != 1:
        raise ValueError(f"a row sweep needs hooks on one axis, got {sorted(axes)}")
    return axes.pop()


@threads_by_workload
def patch(
    model: HookedRootModule,
    clean: Graph,
    corrupted: Graph,
    metric: Metric,
    components: Selection,
    *,
    direction: Direction = DEFAULT_DIRECTION,
    method: Method = "batched",
    copies: int = 64,
    max_memory: int | float | str | None = None,
    **forward_kwargs: Any,
) -> HookScores:
    """Exact activation patching: the effect of patching each selected component alone.

    ``components`` is a selector's :class:`~hookgnn.patching.selectors.Selection`:
    :func:`~hookgnn.patching.selectors.messages` (round x edge),
    :func:`~hookgnn.patching.selectors.nodes` (round x node),
    :func:`~hookgnn.patching.selectors.neurons` (round x feature) or
    :func:`~hookgnn.patching.selectors.hooks` (any hook points). For component ``c``,

    .. math:: \\text{values}[r, i] = m(\\text{base run with } a_c \\leftarrow a_c^{source}) - m(\\text{base run}),

    returned as :class:`HookScores` ``[hook, item]`` with ``baseline`` = :math:`m(\\text{base run})`
    (``patched_metrics()`` gives the metrics themselves). The metric is averaged over the
    graphs of the batch. ``forward_kwargs`` (e.g. ``steps``) go to every forward.
    ``method="batched"`` runs ``copies`` patched copies per forward, or with
    ``max_memory`` (bytes, or e.g. ``"2GiB"``) as many as its estimate fits in that
    budget (:mod:`hookgnn.patching.budget`); the results do not depend on the chunk size;
    ``method="loop"`` runs one forward per patch.

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.metrics.per_graph import OutputSum
    >>> from hookgnn.patching import nodes
    >>> from hookgnn.spec import FeatureSpec
    >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=2)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> s = patch(model, g, g.replace(x=torch.randn(3, 1)), OutputSum("d"), nodes(model, "update"))
    >>> s.axes, tuple(s.values.shape)
    (('round', 'node'), (2, 3))

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param clean: the clean graph or batch (:class:`~hookgnn.graph.Graph`); the metric reads its targets.
    :param corrupted: the corrupted graph or batch: the same nodes and edges as ``clean`` (activations are swapped
        row for row).
    :param metric: ``metric(output, graph)`` -> one value per graph (:mod:`hookgnn.metrics`), averaged over the
        batch.
    :param components: what to patch: a selector's :class:`~hookgnn.patching.selectors.Selection` (``messages``,
        ``nodes``, ``neurons``, ``hooks``).
    :param direction: ``"denoising"`` (clean values patched into the corrupted run, the default) or ``"noising"``
        (corrupted values into the clean run).
    :param method: ``"batched"`` (``copies`` patched copies per forward, default) or ``"loop"`` (one forward per
        patch).
    :param copies: patched copies of the graph run in one batched forward (memory against speed; the results do
        not depend on it).
    :param max_memory: instead of ``copies``: a memory budget (bytes, or e.g. ``"2GiB"``) that sets the number of
        copies per forward.
    :param forward_kwargs: keywords for every forward of the model, e.g. ``steps=8``.
    """
    if not isinstance(components, Selection):
        raise TypeError(f"patch chooses components with a selector (messages(model), nodes(model, site), "
                        f"neurons(model, site) or hooks(model, names)), got {type(components).__name__}; "
                        "for a list of Components use patch_each")
    hooks, over = list(components.hooks), components.over
    check_same_structure(clean, corrupted)
    metric = clean_targets(metric, clean)
    base, src_graph = base_and_source(clean, corrupted, direction)
    points = [model.resolve(h)[0] for h in hooks]
    with torch.no_grad():
        _, source = model.run_with_cache(src_graph, names_filter=list(hooks), **forward_kwargs)
        entries = [(h, i) for h in hooks for i in range(_items(source[h].shape, over))]
        if max_memory is not None and method == "batched":
            from hookgnn.patching.budget import copies_within

            copies = copies_within(model, base, max_memory, max(len(entries), 1), **forward_kwargs)
        if method == "loop":
            baseline = float(metric(model(base, **forward_kwargs), base).mean())
            whole = lambda batch, k: model(batch, **forward_kwargs)  # noqa: E731
            values = [_run(model, base, metric, [e], source, over, whole)[0] for e in entries]
        elif method == "batched":
            values, baseline = _batched(model, base, metric, entries, source, over, copies, forward_kwargs)
        else:
            raise ValueError(f"method must be 'batched' or 'loop', got {method!r}")
    widths = [_items(source[h].shape, over) for h in hooks]
    if len(set(widths)) != 1:
        raise ValueError(f"hooks of one sweep must have the same number of items, got {dict(zip(hooks, widths))}")
    table = torch.tensor(values, dtype=torch.float32).reshape(len(hooks), widths[0]) - baseline
    return HookScores(table, tuple(hooks), ("round", _item_axis(points, over)), baseline, direction)


def activation_sweep(
    model: HookedRootModule,
    clean: Graph,
    corrupted: Graph,
    metric: Metric,
    hooks: Sequence[str],
    over: Over = "row",
    direction: Direction = DEFAULT_DIRECTION,
    method: Method = "batched",
    copies: int = 64,
    max_memory: int | float | str | None = None,
    **forward_kwargs: Any,
) -> HookScores:
    """Deprecated: ``patch(model, clean, corrupted, metric, hooks(model, names, over=over), ...)``."""
    warn_deprecated("activation_sweep", "patch(model, clean, corrupted, metric, hooks(model, names, over=...))")
    if not hooks:
        raise ValueError("no hooks to sweep")
    return patch(model, clean, corrupted, metric, Selection(tuple(hooks), over), direction=direction, method=method,
                 copies=copies, max_memory=max_memory, **forward_kwargs)


@threads_by_workload
def patch_each(
    model: HookedRootModule,
    clean: Graph,
    corrupted: Graph,
    metric: Metric,
    components: Sequence[Component],
    direction: Direction = DEFAULT_DIRECTION,
    copies: int = 64,
    **forward_kwargs: Any,
) -> Tensor:
    """The exact effect of patching each component alone (rows: ``index`` set, ``feature`` None).

    The batched machinery of :func:`patch` on a chosen list instead of whole
    hooks: returns ``[len(components)]`` metric changes (mean over graphs).

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.metrics.per_graph import OutputSum
    >>> from hookgnn.spec import FeatureSpec
    >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=2)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> patch_each(model, g, g.replace(x=torch.randn(3, 1)), OutputSum("d"), [Component("layers.1.hook_src", 0)]).shape
    torch.Size([1])

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param clean: the clean graph or batch (:class:`~hookgnn.graph.Graph`); the metric reads its targets.
    :param corrupted: the corrupted graph or batch: the same nodes and edges as ``clean`` (activations are swapped
        row for row).
    :param metric: ``metric(output, graph)`` -> one value per graph (:mod:`hookgnn.metrics`), averaged over the
        batch.
    :param components: the :class:`~hookgnn.patching.components.Component` s to patch, one at a time (rows:
        ``index`` set, ``feature`` None).
    :param direction: ``"denoising"`` (clean values patched into the corrupted run, the default) or ``"noising"``
        (corrupted values into the clean run).
    :param copies: patched copies of the graph run in one batched forward (memory against speed; the results do
        not depend on it).
    :param forward_kwargs: keywords for every forward of the model, e.g. ``steps=8``.
    """
    check_same_structure(clean, corrupted)
    if any(c.index is None or c.feature is not None for c in components):
        raise ValueError("patch_each patches rows: every component needs an index and no feature")
    metric = clean_targets(metric, clean)
    base, src_graph = base_and_source(clean, corrupted, direction)
    hooks = sorted({c.hook for c in components})
    for h in hooks:
        model.resolve(h)
    with torch.no_grad():
        _, source = model.run_with_cache(src_graph, names_filter=hooks, **forward_kwargs)
        entries = [(c.hook, int(c.index)) for c in components]  # type: ignore[arg-type]
        values, baseline = _batched(model, base, metric, entries, source, "row", copies, forward_kwargs,
                                    merge_rounds=True)
    return torch.tensor(values, dtype=torch.float64) - baseline


def _batched(
    model: HookedRootModule,
    base: Graph,
    metric: Metric,
    entries: list[tuple[str, int]],
    source: Any,
    over: Over,
    copies: int,
    forward_kwargs: dict[str, Any],
    merge_rounds: bool = False,
) -> tuple[list[float], float]:
    """Forwards of up to ``copies`` patched copies each; returns the values and the
    metric of the unpatched base run.

    On a model that can resume a run at a round (``model.can_resume(**forward_kwargs)``,
    the rounds protocol: a :class:`~hookgnn.models.HookedGNN`), patches are grouped by
    round and each group resumes the base run at its round (``model.resume``): the rounds
    before a patch are the same in every copy, so they are not recomputed. ``merge_rounds``
    puts every patch in one group resumed at the earliest of their rounds instead (fewer
    forwards for a few patches spread over many rounds).
    """
    copies = copies_per_forward(model, sorted({h for h, _ in entries}), copies)
    whole = lambda batch, k: model(batch, **forward_kwargs)  # noqa: E731
    if not model.can_resume(**forward_kwargs):
        baseline = float(metric(model(base, **forward_kwargs), base).mean())
        return [v for _, part in chunks(entries, copies)
                for v in _run(model, base, metric, list(part), source, over, whole)], baseline
    steps = forward_kwargs.get("steps") or model.num_rounds
    first = {h: min(model.round_of(h) or 0, steps) for h, _ in entries}
    if merge_rounds and first:
        first = dict.fromkeys(first, min(first.values()))
    entering = {t: model.state_hook(t) for t in set(first.values()) if t > 0}
    base_out, base_cache = model.run_with_cache(base, names_filter=sorted(entering.values()), **forward_kwargs)
    values: dict[int, float] = {}
    order = sorted(range(len(entries)), key=lambda j: first[entries[j][0]])
    for t in sorted(set(first.values())):
        group = [j for j in order if first[entries[j][0]] == t]

        def resumed(batch: Graph, k: int, t: int = t) -> Any:
            state = base_cache[entering[t]].repeat(k, 1)
            return model.resume(batch, t, state, base_out, k, **forward_kwargs)

        for _, chunk in chunks(group, copies):
            got = _run(model, base, metric, [entries[j] for j in chunk], source, over, whole if t == 0 else resumed)
            values.update(zip(chunk, got))
    return [values[j] for j in range(len(entries))], float(metric(base_out, base).mean())


def _run(
    model: HookedRootModule,
    base: Graph,
    metric: Metric,
    entries: list[tuple[str, int]],
    source: Any,
    over: Over,
    forward: Callable[[Graph, int], Any],
) -> list[float]:
    """One forward (``forward(batch, k)``) of ``k = len(entries)`` copies of ``base``; copy
    ``j`` gets patch ``entries[j]``; the metric of each copy."""
    k = len(entries)
    batch = disjoint_union([base] * k)
    by_hook: dict[str, tuple[list[int], list[int]]] = {}
    for j, (h, item) in enumerate(entries):
        js, items = by_hook.setdefault(h, ([], []))
        js.append(j)
        items.append(item)

    def make(h: str) -> Any:
        js, items = by_hook[h]
        return lambda act, hook: patch_rows(act, source[h], js, items, k, over)

    with model.hooks(fwd_hooks=[(h, make(h)) for h in by_hook]):
        out = forward(batch, k)
    return metric_per_copy(metric, out, batch, k).tolist()
