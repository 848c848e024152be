"""Trusting an estimator: filter then verify, and an audit against exact patching.

* :func:`verify` ranks components by an estimator (attribution, EAP-IG, AtP*),
  re-scores the top ``k`` with exact single patches (batched), and returns a ranking
  whose head is exact: the top ``k`` by their exact effect, then the rest by the
  estimate. Circuits selected from it rest on exact numbers where it matters.
* :func:`audit` compares an estimator with exact patching on a pair (or a batch of
  pairs): signed and absolute Spearman correlation, recall of the exact top ``k``,
  and how many components each ranking needs to reach a faithfulness target. It warns
  when the agreement is low.

Scores are compared only within one patching direction
(:func:`~hookgnn.patching.results.check_same_direction`).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from hookgnn._deprecated import deprecated_alias
from hookgnn.circuits.circuit import Ablation, Circuit, evaluate
from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.metrics.per_graph import Metric, faithfulness
from hookgnn.patching.activation import patch_each
from hookgnn.patching.components import Component, MessageEdge, check_carriers, message_hooks
from hookgnn.patching.results import HookScores, check_same_direction
from hookgnn.ops.threads import threads_by_workload


def spearman(a: Tensor, b: Tensor) -> float:
    """Spearman's rank correlation with average ranks for ties (NaN if either is constant).

    >>> spearman(torch.tensor([1., 2., 3., 4.]), torch.tensor([10., 20., 20., 40.]))
    0.9486832980505138
    """
    ra, rb = _ranks(a.flatten().double()), _ranks(b.flatten().double())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = ra.norm() * rb.norm()
    return float("nan") if float(den) == 0.0 else float((ra * rb).sum() / den)


def _ranks(x: Tensor) -> Tensor:
    order = torch.argsort(x, stable=True)
    ranks = torch.empty_like(x)
    ranks[order] = torch.arange(x.numel(), dtype=x.dtype)
    _, inverse, counts = torch.unique(x, return_inverse=True, return_counts=True)
    sums = torch.zeros(counts.shape[0], dtype=x.dtype).index_add_(0, inverse, ranks)
    return (sums / counts)[inverse]


def top_k_recall(estimate: Tensor, exact: Tensor, k: int) -> float:
    """Recall of the exact top ``k`` by the estimate's top ``k`` (by absolute value), ties defined.

    Only non-zero exact effects count: :math:`k' = \\min(k, \\#\\{i: e_i \\ne 0\\})`. The exact
    top set :math:`T` holds every component whose :math:`|e_i|` is at least the :math:`k'`-th
    largest, so every component tied with the :math:`k'`-th is in it; the estimate's top
    :math:`S` is its :math:`k'` largest non-zero :math:`|\\hat e_i|` (ties to the lower index).
    The recall is :math:`|S \\cap T| / k'`. When every exact effect is zero it is undefined:
    NaN, with a ``UserWarning``. A NaN score raises ``ValueError``.

    >>> top_k_recall(torch.tensor([3., 2., 0., 1.]), torch.tensor([1., 0., 0., 1.]), 2)
    0.5
    """
    a, b = estimate.flatten().double(), exact.flatten().double()
    if a.shape != b.shape:
        raise ValueError(f"estimate and exact must have the same number of scores, got {a.numel()} and {b.numel()}")
    if bool(a.isnan().any() | b.isnan().any()):
        raise ValueError(f"top_k_recall needs numbers; {'estimate' if bool(a.isnan().any()) else 'exact'} holds NaN")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, int((b != 0).sum()))
    if k == 0:
        warnings.warn("every exact effect is zero, so the exact top k is undefined: recall is NaN", UserWarning,
                      stacklevel=2)
        return float("nan")
    threshold = b.abs().sort(descending=True).values[k - 1]
    top_exact = set((b.abs() >= threshold).nonzero().flatten().tolist())
    order = torch.argsort(a.abs(), descending=True, stable=True)
    top_est = set(order[a.abs()[order] > 0][:k].tolist())
    return len(top_exact & top_est) / k


@dataclass
class Verified:
    """A ranking whose head is verified by exact patching.

    ``exact[c]``: the exact effect of each of the top ``k`` components by the estimate;
    ``ranked``: those ``k`` by decreasing ``|exact|``, then every other component by
    decreasing ``|estimate|``; ``estimate``: the estimator's scores.
    """

    estimate: HookScores
    exact: dict[Component, float]
    ranked: list[Component]

    def score(self, c: Component) -> float:
        """The exact effect where it was verified, else the estimate."""
        if c in self.exact:
            return self.exact[c]
        return float(self.estimate[c.hook][c.index])  # type: ignore[index]


@threads_by_workload
def verify(
    model: HookedRootModule,
    clean: Graph,
    corrupted: Graph,
    metric: Metric,
    estimate: HookScores,
    k: int = 32,
    copies: int = 64,
    **forward_kwargs: Any,
) -> Verified:
    """Re-score the top ``k`` components of ``estimate`` (row scores: ``[round, node|edge]``)
    with exact single patches in ``estimate.direction``; see :class:`Verified`.

    Cost: ``k`` patched copies (batched, each resumed at its round) on top of the estimate.

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.attribution import attribute
    >>> from hookgnn.metrics import OutputSum
    >>> from hookgnn.patching import nodes
    >>> from hookgnn.spec import FeatureSpec
    >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=2)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> bad = g.replace(x=torch.randn(3, 1))
    >>> estimate = attribute(model, g, bad, OutputSum("d")).rows(nodes(model).hooks)
    >>> len(verify(model, g, bad, OutputSum("d"), estimate, k=2).exact)
    2

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param clean: the clean graph or batch (:class:`~hookgnn.graph.Graph`); the metric reads its targets.
    :param corrupted: the corrupted graph or batch: the same nodes and edges as ``clean`` (activations are swapped
        row for row).
    :param metric: ``metric(output, graph)`` -> one value per graph (:mod:`hookgnn.metrics`), averaged over the
        batch.
    :param estimate: row scores ``[round, node|edge]`` to re-score (e.g. from
        :func:`~hookgnn.attribution.atp_star`).
    :param k: how many of its top components to patch exactly.
    :param copies: patched copies of the graph run in one batched forward (memory against speed; the results do
        not depend on it).
    :param forward_kwargs: keywords for every forward of the model, e.g. ``steps=8``.
    """
    if estimate.axes[1] == "feature":
        raise ValueError("verify re-scores rows (nodes or edges); feature scores cannot be patched one row at a time")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    est = estimate.effects()
    flat = est.values.flatten()
    order = torch.argsort(flat.abs(), descending=True, stable=True).tolist()
    width = est.values.shape[1]
    every = [est.component(i // width, i % width) for i in order]
    head = every[:k]
    exact = patch_each(model, clean, corrupted, metric, head, estimate.direction, copies, **forward_kwargs)
    found = dict(zip(head, exact.tolist()))
    ranked = sorted(head, key=lambda c: -abs(found[c])) + every[k:]
    return Verified(est, found, ranked)


verify_top = deprecated_alias("verify_top", verify, "verify(model, clean, corrupted, metric, estimate, k=...)")


def message_edges_of(model: HookedRootModule, graph: Graph, components: Sequence[Component]) -> list[MessageEdge]:
    """The :class:`MessageEdge` carried by each ``hook_src`` row component."""
    src, dst = graph.edge_index.tolist()
    out = []
    for c in components:
        t = model.round_of(c.hook)
        if t is None or c.index is None or model.round_hook("hook_src", t) != c.hook:
            raise ValueError(f"{c} is not a row of a round's hook_src, so it carries no single message")
        check_carriers(model, [c.hook])
        out.append(MessageEdge(t, c.index, src[c.index], dst[c.index], message_hooks(model, t)))
    return out


@dataclass
class Audit:
    """How well an estimator agrees with exact patching (see :func:`audit`).

    ``recall_at_k``: :func:`top_k_recall` (NaN when every exact effect is zero); ``k``:
    the ``k`` it used (at most the number of non-zero exact effects).
    """

    spearman: float
    abs_spearman: float
    recall_at_k: float
    k: int
    size_exact: int | None
    size_estimate: int | None
    target: float

    def __str__(self) -> str:
        sizes = f"{self.size_exact} (exact ranking) vs {self.size_estimate} (estimate)"
        return (f"Spearman {self.spearman:.3f} (|.| {self.abs_spearman:.3f}); recall of the exact top {self.k}: "
                f"{self.recall_at_k:.2f}; components to reach faithfulness {self.target}: {sizes}")


@threads_by_workload
def audit(
    model: HookedRootModule,
    clean: Graph,
    corrupted: Graph,
    metric: Metric,
    estimate: HookScores,
    exact: HookScores,
    *,
    k: int = 20,
    target: float = 0.9,
    ablation: Ablation = "resample",
    warn_below: float = 0.8,
    **forward_kwargs: Any,
) -> Audit:
    """Compare ``estimate`` with ``exact`` (a sweep of the same components and direction).

    ``size_*``: the smallest number of top components (by each ranking, on a geometric
    grid of sizes) whose circuit reaches faithfulness ``target``, evaluated with the rest
    of the components ablated (``ablation``); for message components the circuit is
    made of their :class:`MessageEdge` s. Warns (``UserWarning``) when the signed
    Spearman correlation is below ``warn_below`` (or NaN). Raises ``ValueError`` when
    faithfulness is undefined (:func:`~hookgnn.metrics.per_graph.faithfulness`: the full and
    the empty circuit score the same), naming both values.

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.attribution import attribute
    >>> from hookgnn.metrics import OutputSum
    >>> from hookgnn.patching import nodes, patch
    >>> from hookgnn.spec import FeatureSpec
    >>> torch.manual_seed(0) and None
    >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=2)
    >>> g = Graph(x=torch.randn(4, 1), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]))
    >>> bad, m = g.replace(x=torch.randn(4, 1)), OutputSum("d")
    >>> exact = patch(model, g, bad, m, nodes(model))
    >>> report = audit(model, g, bad, m, attribute(model, g, bad, m).rows(exact.hooks), exact, warn_below=-1.0)
    >>> -1.0 <= report.spearman <= 1.0
    True

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param clean: the clean graph or batch (:class:`~hookgnn.graph.Graph`); the metric reads its targets.
    :param corrupted: the corrupted graph or batch: the same nodes and edges as ``clean`` (activations are swapped
        row for row).
    :param metric: ``metric(output, graph)`` -> one value per graph (:mod:`hookgnn.metrics`), averaged over the
        batch.
    :param estimate: the estimated scores to audit.
    :param exact: exact scores of the same components in the same direction (:func:`~hookgnn.patching.patch`).
    :param k: recall is measured on the exact top ``k``.
    :param target: the faithfulness each ranking's circuit must reach (``size_*``).
    :param ablation: how components outside a circuit are ablated: ``"resample"``, ``"zero"`` or ``"mean"``.
    :param warn_below: warn when the signed Spearman correlation is below this.
    :param forward_kwargs: keywords for every forward of the model, e.g. ``steps=8``.
    """
    check_same_direction(estimate, exact)
    if estimate.hooks != exact.hooks or estimate.values.shape != exact.values.shape:
        raise ValueError(f"estimate and exact scores must cover the same components: hooks {estimate.hooks[:2]}.. "
                         f"{tuple(estimate.values.shape)} vs {exact.hooks[:2]}.. {tuple(exact.values.shape)}")
    a, b = estimate.effects().values.flatten(), exact.effects().values.flatten()
    recall, k = top_k_recall(a, b, k), min(k, int((b != 0).sum()))
    width = exact.values.shape[1]
    units = _units(model, clean, exact, [exact.component(i // width, i % width) for i in range(a.numel())])
    sizes = _grid(len(units))
    run = lambda c: evaluate(model, clean, corrupted, metric, c, units, ablation, **forward_kwargs)  # noqa: E731
    full, empty = run(Circuit.of(units)), run(Circuit())
    try:
        faithfulness(full, full, empty)
    except ValueError as err:
        raise ValueError(f"audit cannot size circuits: with every component kept the metric is {full}, with every "
                         f"one ablated ({ablation}) {empty}: {err}") from None

    def size_for(scores: Tensor) -> int | None:
        ranked = [units[i] for i in torch.argsort(scores.abs(), descending=True, stable=True).tolist()]
        for n in sizes:
            if float(faithfulness(run(Circuit.of(ranked[:n])), full, empty)) >= target:
                return n
        return None

    result = Audit(spearman(a, b), spearman(a.abs(), b.abs()), recall, k, size_for(b), size_for(a), target)
    if not result.spearman >= warn_below:
        warnings.warn(f"the estimate agrees poorly with exact patching: {result}", UserWarning, stacklevel=2)
    return result


def _units(model: HookedRootModule, graph: Graph, scores: HookScores, comps: list[Component]) -> list[Any]:
    if scores.axes[1] == "edge" and all(model.round_of(h) is not None and model.round_hook("hook_src", model.round_of(h)) == h
                                        for h in scores.hooks):
        return message_edges_of(model, graph, comps)
    return comps


def _grid(n: int) -> list[int]:
    """1, 2, 3, 5, 8, ... (x1.5 steps) up to ``n``, with ``n`` last."""
    out, size = [], 1
    while size < n:
        out.append(size)
        size = max(size + 1, int(size * 1.5))
    return out + [n]
