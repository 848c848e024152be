"""Circuits: sets of components or computational edges, and their evaluation by ablation.

Selection, pruning and overlap live in :mod:`hookgnn.circuits.selection` and are re-exported here.

A :class:`Circuit` holds :class:`~hookgnn.patching.components.Component` s and/or edges
(:class:`~hookgnn.patching.components.MessageEdge`,
:class:`~hookgnn.patching.components.WeightEdge`). It is evaluated by running the model
with everything of a *universe* that lies outside the circuit ablated through forward
hooks (weights are never touched):

* components: entries of the universe's components not covered by the circuit take
  the ablation value;
* message edges: the message of every universe edge outside the circuit is recomputed
  from the ablated sender state (row ``e`` of ``layers.t.hook_src``);
* weight edges ``i -> j`` outside the circuit: ``dst_j`` receives ``W_ji`` times the
  ablated ``src_i`` instead of the live one (for elementwise, gather and min/max links,
  ``dst_j`` is recomputed from the ablated ``src_j``). Where the weight is followed by an
  activation (``dst = \\varphi(W src + ...)``), the correction goes to the link's ``pre``
  hook point (the pre-activation), so the activation sees it; a link without ``pre``
  raises ``ValueError`` naming the hook point that is missing.

Ablation values: ``"resample"`` (the corrupted run's activation), ``"zero"``, or ``"mean"``
(each hook's mean over all rows of a dataset batch). Faithfulness follows
:func:`hookgnn.metrics.per_graph.faithfulness`.
"""


from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from hookgnn.circuits.selection import (  # selection, pruning and overlap; re-exported: this is their public path
    Circuit,
    above,
    greedy_from_outputs,
    head,
    jaccard,
    prune,
    select,
    tail,
    top_n,
    weighted_jaccard,
)
from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.metrics.per_graph import Metric, faithfulness
from hookgnn.metrics.targets import clean_targets
from hookgnn.nn.wiring import ResolvedLink, act_fn, links_of
from hookgnn.ops import scatter
from hookgnn.patching.activation import check_same_structure
from hookgnn.patching.components import (
    Component,
    Edge,
    MessageEdge,
    WeightEdge,
    check_carriers,
    component_mask,
    message_hooks,
)
from hookgnn.ops.threads import threads_by_workload

Ablation = Literal["resample", "zero", "mean"]

__all__ = ["Ablation", "Circuit", "above", "ablation_values", "evaluate", "faithfulness_curve", "greedy_from_outputs",
           "head", "jaccard", "prune", "select", "tail", "top_n", "weighted_jaccard"]


# ------------------------------------------------------------------- evaluation
def ablation_values(
    model: HookedRootModule, hooks: Sequence[str], corrupted: Graph, ablation: Ablation, dataset: Graph | None,
    **forward_kwargs: Any,
) -> dict[str, Tensor]:
    """Per hook, the value that ablated entries take (broadcastable to the activation)."""
    source = corrupted if ablation != "mean" else dataset
    if ablation == "mean" and dataset is None:
        raise ValueError("mean ablation needs a dataset batch")
    if ablation not in ("resample", "zero", "mean"):
        raise ValueError(f"ablation must be 'resample', 'zero' or 'mean', got {ablation!r}")
    with torch.no_grad():
        _, cache = model.run_with_cache(source, names_filter=sorted(set(hooks)), **forward_kwargs)
    if ablation == "resample":
        return {h: cache[h] for h in hooks}
    if ablation == "zero":
        return {h: torch.zeros_like(cache[h][:1]) for h in hooks}
    return {h: cache[h].mean(0, keepdim=True) for h in hooks}


@threads_by_workload
def evaluate(
    model: HookedRootModule,
    clean: Graph,
    corrupted: Graph,
    metric: Metric,
    circuit: Circuit,
    universe: Iterable[Component | Edge],
    ablation: Ablation = "resample",
    dataset: Graph | None = None,
    **forward_kwargs: Any,
) -> float:
    """Metric (mean over graphs) of the clean run with the universe outside ``circuit`` ablated.

    With ``"resample"`` ablation, ``clean`` and ``corrupted`` must share ``edge_index`` and
    ``ptr`` (activation rows are swapped one for one); otherwise a ``ValueError`` is raised.
    Message edges outside the circuit whose carrier is not one row per graph edge (a layer
    with its own edge list) raise ``ValueError`` (:func:`~hookgnn.patching.components.check_carriers`).

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.metrics.per_graph import OutputSum
    >>> from hookgnn.spec import FeatureSpec
    >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=1)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> uni = [Component("hook_out.d", i) for i in range(3)]
    >>> evaluate(model, g, g, OutputSum("d"), Circuit(), uni) == float(OutputSum("d")(model(g), g).detach())
    True

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param clean: the clean graph or batch (:class:`~hookgnn.graph.Graph`); the metric reads its targets.
    :param corrupted: the graph(s) whose activations replace the ablated ones (``"resample"``): same
        ``edge_index`` and ``ptr`` as ``clean``.
    :param metric: ``metric(output, graph)`` -> one value per graph (:mod:`hookgnn.metrics`), averaged over the
        batch.
    :param circuit: what is kept.
    :param universe: every component and edge that can be ablated; what of it is outside ``circuit`` is ablated.
    :param ablation: ``"resample"`` (corrupted values, default), ``"zero"`` or ``"mean"`` (over ``dataset``).
    :param dataset: graphs whose mean activations ``"mean"`` ablation uses.
    :param forward_kwargs: keywords for every forward of the model, e.g. ``steps=8``.
    """
    if ablation == "resample":
        check_same_structure(clean, corrupted)
    return _evaluate_with(model, clean, metric, circuit, universe,
                         lambda hooks: ablation_values(model, hooks, corrupted, ablation, dataset, **forward_kwargs),
                         **forward_kwargs)


def _evaluate_with(
    model: HookedRootModule, clean: Graph, metric: Metric, circuit: Circuit, universe: Iterable[Component | Edge],
    values_of: Callable[[list[str]], dict[str, Tensor]], **forward_kwargs: Any,
) -> float:
    """:func:`evaluate` with the ablation values of the hooks it needs given by ``values_of(hooks)``
    (:func:`ablation_values` of a run already made, so that several evaluations share one source run)."""
    metric = clean_targets(metric, clean)
    universe = list(universe)
    comps = [u for u in universe if isinstance(u, Component)]
    carrier_hook = _carrier_hooks(model)
    msgs = [u for u in universe if isinstance(u, MessageEdge) and u not in circuit.edges]
    wedges = [u for u in universe if isinstance(u, WeightEdge) and u not in circuit.edges]
    specs: list[tuple[str, Callable[..., Tensor]]] = []
    comp_hooks = sorted({c.hook for c in comps})
    by_carrier: dict[str, list[int]] = {}  # carrier hook -> its rows (edges) of the ablated messages
    for m in msgs:
        by_carrier.setdefault(carrier_hook(m.round), []).append(m.edge)
    msg_hooks = sorted(by_carrier)
    check_carriers(model, msg_hooks)
    links = _links_for(model, wedges)
    link_src = sorted({l.src for l, _ in links})
    needed = sorted(set(comp_hooks + msg_hooks + link_src))
    values = values_of(needed) if needed else {}

    # Order of hooks on one point: weight-edge corrections, message and component
    # ablations (which override them), then the recording of link sources.
    fixes, records = _weight_edge_hooks(model, clean, links, values)
    specs += fixes
    by_hook: dict[str, tuple[list[Component], list[Component]]] = {h: ([], []) for h in comp_hooks}
    for c in comps:
        by_hook[c.hook][0].append(c)
    for c in circuit.components:
        if c.hook in by_hook:
            by_hook[c.hook][1].append(c)
    for h in comp_hooks:
        def fn(act: Tensor, hook: Any, h: str = h) -> Tensor:
            uni, kept = by_hook[h]
            ablate = component_mask(uni, h, act.shape, act.device) & ~component_mask(kept, h, act.shape, act.device)
            return torch.where(ablate, values[h].to(act).expand_as(act), act)
        specs.append((h, fn))
    for h in msg_hooks:
        rows = torch.tensor(by_carrier[h], dtype=torch.long)
        def fn(act: Tensor, hook: Any, h: str = h, rows: Tensor = rows) -> Tensor:
            if len(rows) and int(rows.max()) >= act.shape[0]:
                raise IndexError(f"a message edge of {h} names row {int(rows.max())}, but its carrier has "
                                 f"{act.shape[0]} rows (one per graph edge)")
            mask = torch.zeros(act.shape[:1], dtype=torch.bool, device=act.device)
            mask[rows.to(act.device)] = True  # the ablated messages' rows, every feature
            mask = mask.reshape(-1, *([1] * (act.dim() - 1)))
            return torch.where(mask, values[h].to(act).expand_as(act), act)
        specs.append((h, fn))
    specs += records
    with torch.no_grad(), model.hooks(fwd_hooks=specs):
        out = model(clean, **forward_kwargs)
        return float(metric(out, clean).mean())


def _carriers(model: HookedRootModule) -> Callable[[MessageEdge], Component]:
    """``edge.in_model(model).carrier``, asking the model for each round's hook points once."""
    hook = _carrier_hooks(model)
    return lambda edge: Component(hook(edge.round), edge.edge)


def _carrier_hooks(model: HookedRootModule) -> Callable[[int], str]:
    """Round ``t`` -> the hook point carrying its messages (:func:`message_hooks`), asked of the model once."""
    hooks: dict[int, str] = {}

    def carrier_hook(t: int) -> str:
        if t not in hooks:
            hooks[t] = message_hooks(model, t).carrier
        return hooks[t]
    return carrier_hook


def _links_for(model: HookedRootModule, wedges: list[WeightEdge]) -> list[tuple[ResolvedLink, list[WeightEdge]]]:
    if not wedges:
        return []
    by_link: dict[tuple[int | None, str], list[WeightEdge]] = {}
    for e in wedges:
        by_link.setdefault((e.round, e.name), []).append(e)
    # Every round's links are listed (cheap): a link's destination may lie outside its
    # round's module (a wrapped PyG model's leaf between two rounds), so rounds are not
    # read from hook names or from round_of.
    links = links_of(model, range(model.num_rounds))
    found = [(l, by_link[(l.round, l.name)]) for l in links if (l.round, l.name) in by_link]
    missing = set(by_link) - {(l.round, l.name) for l, _ in found}
    if missing:
        labels = sorted(by_link[k][0].link for k in missing)
        raise KeyError(f"weight edges of unknown links {labels[:5]}: links_of(model, ...) lists no such link")
    return found


HookList = list[tuple[str, Callable[..., Tensor]]]


def _weight_edge_hooks(
    model: HookedRootModule, graph: Graph, links: list[tuple[ResolvedLink, list[WeightEdge]]], values: dict[str, Tensor]
) -> tuple[HookList, HookList]:
    """Hooks that correct link destinations for ablated weight edges, and hooks that record
    link sources; the caller adds the recording hooks after every other hook.

    A hook point can be both a corrected destination (of round ``t``) and a source (of
    round ``t + 1``): the source value a later correction reads must be the final,
    corrected one, and hooks on one point run in the order they were added.
    """
    live: dict[str, Tensor] = {}
    src_idx, dst_idx = graph.edge_index
    specs: HookList = []
    for link, edges in links:
        target = link.dst
        if link.act != "identity" and link.weight is not None:
            if link.pre is None:
                raise ValueError(
                    f"weight edges of link {link.name} (round {link.round}) feed {link.dst} through {link.act}: "
                    f"ablating them needs the pre-activation W·{link.src} + ..., and the link names no pre hook point "
                    "holding it; add a hook point before the activation and give the Link pre=<its name> (or split it "
                    "into a weight link to that hook point and an elementwise link from it)"
                )
            target = link.pre
        pairs = torch.tensor([[e.src.feature, e.dst.feature] for e in edges], dtype=torch.long)

        def fix(act: Tensor, hook: Any, link: ResolvedLink = link, pairs: Tensor = pairs) -> Tensor:
            cur = live[link.src]
            diff = values[link.src].to(cur).expand_as(cur) - cur  # [rows_src, d_src]
            if link.weight is not None:
                rows = diff if link.rows == "same" else diff[src_idx if link.rows == "src" else dst_idx]
                w = torch.zeros_like(link.weight)
                w[pairs[:, 1], pairs[:, 0]] = link.weight[pairs[:, 1], pairs[:, 0]]
                return act + rows @ w.T.to(act)
            abl = values[link.src].to(cur).expand_as(cur)
            if link.rows == "scatter":
                reduce = link.reduce or model.round_module(link.round).aggr
                new = scatter(abl, dst_idx, act.shape[0], reduce)  # type: ignore[arg-type]
            else:
                new = abl if link.rows == "same" else abl[src_idx if link.rows == "src" else dst_idx]
                new = act_fn(link.act)(new)
            cols = torch.zeros(act.shape[-1], dtype=torch.bool, device=act.device)
            cols[pairs[:, 1]] = True
            return torch.where(cols, new, act)
        specs.append((target, fix))
    records: HookList = []
    for s in sorted({l.src for l, _ in links}):
        def record(act: Tensor, hook: Any, s: str = s) -> None:
            live[s] = act
        records.append((s, record))
    return specs, records


def faithfulness_curve(
    model: HookedRootModule,
    clean: Graph,
    corrupted: Graph,
    metric: Metric,
    ranked: Sequence[Component | Edge],
    sizes: Sequence[int],
    universe: Iterable[Component | Edge],
    ablation: Ablation = "resample",
    dataset: Graph | None = None,
    **forward_kwargs: Any,
) -> Tensor:
    """Normalized faithfulness of the top-``k`` circuit of ``ranked`` for each ``k`` in ``sizes`` (``[len(sizes)]``)."""
    universe = list(universe)
    run = lambda c: evaluate(model, clean, corrupted, metric, c, universe, ablation, dataset, **forward_kwargs)  # noqa: E731
    m_full = run(Circuit.of(universe))
    m_empty = run(Circuit())
    return torch.stack([faithfulness(run(Circuit.of(ranked[:k])), m_full, m_empty) for k in sizes]).float()
