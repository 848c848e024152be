"""The leaderboard's methods: a registry of :class:`Method` s, each ``run(case) -> Found``.

An entry's ``run`` gets a :class:`Case` (a ground truth, a pair, a direction, an ablation) and
returns :class:`Found`: scores per message and/or its own circuit. Add one with :func:`register`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hookgnn.attribution import atp_star, attribute, eap
from hookgnn.circuits import acdc, learn_mask, verify
from hookgnn.graph import Graph
from hookgnn.groundtruth import GroundTruth, Pair
from hookgnn.patching import HookScores, MessageEdge, messages, patch


@dataclass(frozen=True)
class Case:
    """One run of a method: a ground truth, a pair, a direction and an ablation (``dataset``: for mean ablation)."""

    gt: GroundTruth
    pair: Pair
    direction: str
    ablation: str
    dataset: Graph

    @property
    def universe(self) -> list[MessageEdge]:
        return self.gt.messages(self.pair.clean)


@dataclass(frozen=True)
class Found:
    """What a method found: ``scores`` per message (``None``: it scores nothing) and/or its own ``circuit``
    (``own``: that circuit's exact faithfulness in the method's own direction and ablation, if it reports one)."""

    scores: dict[MessageEdge, float] | None = None
    circuit: frozenset[MessageEdge] | None = None
    own: float = float("nan")


@dataclass(frozen=True)
class Method:
    """A leaderboard entry: ``run(case) -> Found``; ``uses_ablation``: whether it depends on ``case.ablation``."""

    name: str
    run: Callable[[Case], Found]
    uses_ablation: bool = False


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to the leaderboard (by name, replacing one of the same name)."""
    METHODS[method.name] = method
    return method


def _by_message(case: Case, scores: HookScores) -> dict[MessageEdge, float]:
    """Round x edge scores (rows in round order, as ``messages(model)`` selects them) keyed by message."""
    vals = scores.values.double()
    return {m: float(vals[m.round, m.edge]) for m in case.universe}


def _carriers(case: Case) -> list[str]:
    return list(messages(case.gt.model).hooks)


def run_exact(case: Case) -> Found:
    gt, p = case.gt, case.pair
    s = patch(gt.model, p.clean, p.corrupted, gt.metric, messages(gt.model), direction=case.direction)
    return Found(_by_message(case, s))


def run_atp(case: Case) -> Found:
    gt, p = case.gt, case.pair
    attr = attribute(gt.model, p.clean, p.corrupted, gt.metric, ig_steps=0, names_filter=_carriers(case),
                     direction=case.direction)
    return Found(_by_message(case, attr.rows(_carriers(case))))


def run_eap_ig(case: Case) -> Found:
    gt, p = case.gt, case.pair
    s = eap(gt.model, p.clean, p.corrupted, gt.metric, ig_steps=16, level="message", direction=case.direction)
    return Found({e: v for e, v in s.as_dict().items() if isinstance(e, MessageEdge)})


def run_atp_star(exact_rounds: int) -> Callable[[Case], Found]:
    def run(case: Case) -> Found:
        gt, p = case.gt, case.pair
        s = atp_star(gt.model, p.clean, p.corrupted, gt.metric, exact_rounds=exact_rounds, direction=case.direction)
        return Found(_by_message(case, s))
    return run


def run_verify(case: Case) -> Found:
    """Filter then verify: AtP, then the top k = max(4, 10%) messages re-scored by exact patches."""
    gt, p = case.gt, case.pair
    hooks = _carriers(case)
    est = attribute(gt.model, p.clean, p.corrupted, gt.metric, ig_steps=0, names_filter=hooks,
                    direction=case.direction).rows(hooks)
    k = max(4, len(case.universe) // 10)
    v = verify(gt.model, p.clean, p.corrupted, gt.metric, est, k=k)
    merged = est.values.clone()
    for c, x in v.exact.items():
        merged[hooks.index(c.hook), c.index] = x
    return Found(_by_message(case, HookScores(merged, est.hooks, est.axes, est.baseline, est.direction)))


#: learn_mask's settings on the ground truths (exact circuits: a high target, few steps suffice)
#: The known circuits are exactly faithful (F = 1); Bellman-Ford denoising has single messages within 1.5 % of
#: that, so the discovery methods run with a tight tolerance.
MASK_TARGET, MASK_STEPS, ACDC_THRESHOLD = 0.999, 100, 1e-3


def _supported(case: Case) -> bool:
    """acdc and learn_mask keep a circuit denoising only by patching clean values in (resample)."""
    return case.direction == "noising" or case.ablation == "resample"


def run_discovery(find: Callable[..., Any], **kwargs: Any) -> Callable[[Case], Found]:
    """``acdc`` or ``learn_mask`` in the row's direction and ablation: its own circuit."""
    def run(case: Case) -> Found:
        if not _supported(case):
            return Found()
        gt, p = case.gt, case.pair
        found = find(gt.model, p.clean, p.corrupted, gt.metric, case.universe, direction=case.direction,
                     ablation=case.ablation, dataset=case.dataset, **kwargs)
        return Found(circuit=frozenset(found.circuit.items()), own=found.faithfulness)
    return run


for _m in (Method("exact", run_exact), Method("AtP", run_atp), Method("EAP-IG16", run_eap_ig),
           Method("AtP*1", run_atp_star(1)), Method("AtP*2", run_atp_star(2)), Method("AtP+verify", run_verify),
           Method("acdc", run_discovery(acdc, threshold=ACDC_THRESHOLD), uses_ablation=True),
           Method("learn_mask", run_discovery(learn_mask, target=MASK_TARGET, steps=MASK_STEPS, progress=False),
                  uses_ablation=True)):
    register(_m)
