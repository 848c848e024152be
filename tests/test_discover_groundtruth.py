"""The issue's discovery target on every shipped ground truth (:mod:`hookgnn.groundtruth`), resample ablation.

References: the known circuits are the ground truths' hand-derived ones per direction
(``pair.sufficient_for(direction)``: the minimal sufficient message sets, checked against float64 twins in
``test_groundtruth.py``). Noising they are the paths of the walk / of each OR path / of the AND; denoising (the
circuit's clean values patched into the corrupted run, everything else recomputed) they are smaller: one message
of either OR path, one message of each AND branch, the last message of the Bellman-Ford walk that is shortest
under the corrupted weights. "The known circuit" for an OR is read as in ``test_discover.py``: precision
against the union of the minimal sets, recall against the best-matching one.

The known sets are exactly faithful (F = 1); Bellman-Ford denoising has single messages within 1.5 % of that,
so the methods run with a tight tolerance: ``acdc(threshold=1e-3)``, ``learn_mask(target=0.999)``.
"""

from __future__ import annotations

import math

import pytest

from hookgnn.circuits import Circuit, acdc, exact_faithfulness, learn_mask, redundancy
from hookgnn.circuits import or_groups
from hookgnn.groundtruth import GROUND_TRUTHS, ground_truth
from hookgnn.patching import MessageEdge

pytestmark = pytest.mark.usefixtures("one_thread")
PAIRS = 2
DIRECTIONS = ("noising", "denoising")


def precision_recall(found: frozenset[MessageEdge], known: tuple[frozenset[MessageEdge], ...]) -> tuple[float, float]:
    """Precision against the union of the minimal circuits, recall against the best-matching one."""
    union = frozenset().union(*known)
    precision = len(found & union) / len(found) if found else 0.0
    return precision, max(len(found & k) / len(k) for k in known)


def no_hooks_left(model) -> bool:  # noqa: ANN001
    return all(i.num_fwd == 0 and i.num_bwd == 0 for i in model.list_hooks())


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("name", sorted(GROUND_TRUTHS))
def test_acdc_returns_the_known_circuit(name: str, direction: str) -> None:
    gt = ground_truth(name)
    for pair in gt.sample_pairs(PAIRS, seed=0):
        found = acdc(gt.model, pair.clean, pair.corrupted, gt.metric, gt.messages(pair.clean), direction=direction,
                     threshold=1e-3)
        got = frozenset(found.circuit.items())
        known = pair.sufficient_for(direction)  # type: ignore[arg-type]
        assert precision_recall(got, known) == (1.0, 1.0), sorted(got)
        assert found.faithfulness == pytest.approx(1.0, abs=1e-5)  # the known circuit is exactly faithful
        assert found.ablation == "resample" and found.direction == direction and no_hooks_left(gt.model)


@pytest.mark.parametrize(("name", "direction", "pairs"), [
    ("or_reachability", "noising", 1), ("and_conjunction", "denoising", 1),
    *(pytest.param(n, d, 5, marks=pytest.mark.slow) for n in sorted(GROUND_TRUTHS) for d in DIRECTIONS)])
def test_learn_mask_returns_the_known_circuit(name: str, direction: str, pairs: int) -> None:
    """Default suite: one OR pair noising, one AND pair denoising (a few seconds); slow: five pairs of every ground
    truth in both directions. Regression (Bellman-Ford noising): without the final exact pruning the mask kept a
    second-best walk (precision 0.82 over 5 pairs)."""
    gt = ground_truth(name)
    for pair in gt.sample_pairs(pairs, seed=0):
        found = learn_mask(gt.model, pair.clean, pair.corrupted, gt.metric, gt.messages(pair.clean),
                           direction=direction, target=0.999, steps=100, progress=False)
        got = frozenset(found.circuit.items())
        known = pair.sufficient_for(direction)  # type: ignore[arg-type]
        assert precision_recall(got, known) == (1.0, 1.0), sorted(got)
        assert found.faithfulness == pytest.approx(1.0, abs=1e-5)


def test_learn_mask_circuit_is_minimal_given_its_kept_set() -> None:
    """Regression: the mask's circuit kept both OR paths (and second-best walks); after the exact pruning pass no
    single unit can go without faithfulness (re-evaluated with ``evaluate``) falling below the target."""
    gt = ground_truth("or_reachability")
    pair = gt.sample_pairs(1, seed=0)[0]
    universe = gt.messages(pair.clean)
    found = learn_mask(gt.model, pair.clean, pair.corrupted, gt.metric, universe, direction="noising", target=0.99,
                       steps=100, progress=False)
    kept = list(found.circuit.items())
    assert found.faithfulness >= 0.99 and kept
    for u in kept:
        less = Circuit.of(v for v in kept if v != u)
        assert exact_faithfulness(gt.model, pair.clean, pair.corrupted, gt.metric, less, universe) < 0.99, u
    assert set(found.dropped[-len(universe) + len(kept):]) == set(universe) - set(kept)
    assert no_hooks_left(gt.model)


def test_redundancy_names_both_or_paths_when_denoising_with_groups_of_four() -> None:
    """Denoising, un-patching one message of a patched path is undone by its other message: the OR group is all four
    messages (each unnecessary alone, any three still leave a path). Regression: ``max_group`` stopped at 3."""
    gt = ground_truth("or_reachability")
    pair = gt.sample_pairs(1, seed=0)[0]
    universe = gt.messages(pair.clean)
    mask = learn_mask(gt.model, pair.clean, pair.corrupted, gt.metric, universe, direction="denoising",
                      target=0.999, steps=100, progress=False)
    report = redundancy(gt.model, pair.clean, pair.corrupted, gt.metric, universe, mask, max_group=4)
    assert len(report.groups) == 1 and report.members() == pair.circuit
    kept = set(mask.circuit.items()) | set(pair.circuit)
    ref = (exact_faithfulness(gt.model, pair.clean, pair.corrupted, gt.metric, Circuit.of(kept), universe,
                              direction="denoising")
           - exact_faithfulness(gt.model, pair.clean, pair.corrupted, gt.metric, Circuit.of(kept - pair.circuit),
                                universe, direction="denoising"))
    assert report.drops[0] == pytest.approx(ref, abs=1e-6) and ref == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="max_group"):
        redundancy(gt.model, pair.clean, pair.corrupted, gt.metric, universe, mask, max_group=1)


def test_discovery_needs_a_direction() -> None:
    gt = ground_truth("or_reachability")
    pair = gt.sample_pairs(1, seed=0)[0]
    for find in (acdc, learn_mask):
        with pytest.raises(TypeError, match="direction"):
            find(gt.model, pair.clean, pair.corrupted, gt.metric, gt.messages(pair.clean))  # type: ignore[call-arg]


def test_redundancy_warns_when_groups_above_three_exceed_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    gt = ground_truth("or_reachability")
    pair = gt.sample_pairs(1, seed=0)[0]
    universe = gt.messages(pair.clean)
    candidates = sorted(pair.circuit, key=repr) + [m for m in universe if m not in pair.circuit][:4]
    monkeypatch.setattr(or_groups, "MAX_GROUPS", 20)
    assert math.comb(len(candidates), 4) > 20  # the test can fail: the cap is reached
    with pytest.warns(UserWarning, match="MAX_GROUPS=20"):
        report = redundancy(gt.model, pair.clean, pair.corrupted, gt.metric, universe, Circuit(), candidates=candidates,
                            max_group=4, ablation="resample", direction="noising")
    assert report.members() == pair.circuit  # pairs and triples still ran
