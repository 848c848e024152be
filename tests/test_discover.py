"""Circuit discovery (acdc, learn_mask, redundancy) on hand-set OR/AND networks with known circuits.

References: a float64 plain-Python twin of each network (:mod:`logic_nets`), a brute-force
search over every subset of a small universe (by the twin), the one-at-a-time pruning walk
written with plain ``evaluate`` calls, and the known circuits derived by hand.
"""

from __future__ import annotations

import functools
import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hookgnn.circuits import Circuit, acdc, evaluate, learn_mask, redundancy
from hookgnn.metrics.per_graph import faithfulness
from hookgnn.metrics.targets import clean_targets
from hookgnn.patching import messages, patch
from logic_nets import CASES, LogicCase, as_pairs, twin, twin_faithfulness, twin_metric

pytestmark = pytest.mark.usefixtures("one_thread")
DIRECTIONS = ("noising", "denoising")
STEPS = 60
#: learn_mask cells run by default (the rest are marked slow: each is a few seconds on one core)
FAST_MASKS = {("or", "noising"), ("and", "denoising")}


def _known_union(c: LogicCase, direction: str) -> set[tuple[int, int]]:
    return set().union(*c.known[direction])


def _precision_recall(found: set[tuple[int, int]], c: LogicCase, direction: str) -> tuple[float, float]:
    """Precision against every unit of the known circuits; recall against the best-matching minimal one."""
    known = _known_union(c, direction)
    precision = len(found & known) / len(found) if found else 0.0
    recall = max(len(found & k) / len(k) for k in c.known[direction])
    return precision, recall


def no_hooks_left(model) -> bool:  # noqa: ANN001
    return all(i.num_fwd == 0 and i.num_bwd == 0 for i in model.list_hooks())


# ------------------------------------------------------------- the networks
@pytest.mark.parametrize("name", list(CASES))
def test_logic_nets_match_the_float64_twin(name: str) -> None:
    c = CASES[name]()
    for g in (c.clean, c.corrupted):
        got = c.model(g).outputs["d"].detach().double()
        torch.testing.assert_close(got, torch.tensor(twin(c, g)[-1], dtype=torch.float64), rtol=1e-6, atol=1e-6)
    with torch.no_grad():
        assert float(c.metric(c.model(c.clean), c.clean)) == 1.0
        assert float(c.metric(c.model(c.corrupted), c.clean)) == 0.0


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(list(CASES)), st.sampled_from(DIRECTIONS), st.data())
def test_evaluate_of_any_circuit_matches_the_twin(name: str, direction: str, data: st.DataObject) -> None:
    """The exact re-evaluation the discovery methods return (evaluate, pair by pair) equals the twin."""
    from hookgnn.circuits import exact_faithfulness

    c = CASES[name]()
    uni = c.universe()
    chosen = data.draw(st.lists(st.sampled_from(uni), unique=True, max_size=len(uni)))
    got = exact_faithfulness(c.model, c.clean, c.corrupted, c.metric, Circuit.of(chosen), uni, "resample", direction)
    assert got == pytest.approx(twin_faithfulness(c, as_pairs(chosen), direction), abs=1e-6)


@pytest.mark.parametrize(("name", "direction"), [("or", "noising"), ("and", "denoising")])
def test_single_exact_patches_see_nothing(name: str, direction: str) -> None:
    """OR when noising, AND when denoising: no single message matters (twin), and patch says 0."""
    c = CASES[name]()
    units = {(t, e) for t in range(2) for e in range(c.clean.num_edges)}
    full = twin_metric(c, units, direction)
    for u in units:  # the twin: one message swapped at a time changes nothing
        single = units - {u} if direction == "noising" else {u}
        assert twin_metric(c, single, direction) == (full if direction == "noising" else twin_metric(c, set(), direction))
    s = patch(c.model, c.clean, c.corrupted, c.metric, messages(c.model), direction=direction)
    assert s.values.abs().max() == 0.0


@functools.cache
def _mask(name: str, direction: str):  # noqa: ANN202
    c = CASES[name]()
    found = learn_mask(c.model, c.clean, c.corrupted, c.metric, c.universe(), direction=direction, target=0.99,
                       steps=STEPS)
    return c, found


# ------------------------------------------------------------- discovery
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("name", list(CASES))
def test_acdc_recovers_a_known_circuit(name: str, direction: str) -> None:
    c = CASES[name]()
    found = acdc(c.model, c.clean, c.corrupted, c.metric, c.universe(), direction=direction)
    got = as_pairs(found.circuit.edges)
    assert got in c.known[direction]
    assert _precision_recall(got, c, direction) == (1.0, 1.0)
    assert found.faithfulness == pytest.approx(twin_faithfulness(c, got, direction), abs=1e-6)
    assert (found.method, found.ablation, found.direction, found.size) == ("acdc", "resample", direction, len(got))
    assert found.forwards > 0 and found.seconds > 0 and no_hooks_left(c.model)


@pytest.mark.parametrize(("name", "direction"), [
    pytest.param(n, d, marks=() if (n, d) in FAST_MASKS else pytest.mark.slow) for n in CASES for d in DIRECTIONS])
def test_learn_mask_recovers_the_known_circuit(name: str, direction: str) -> None:
    """Precision 1 against the known circuit, and every unit of one minimal alternative (recall 1)."""
    c, found = _mask(name, direction)
    got = as_pairs(found.circuit.edges)
    assert _precision_recall(got, c, direction) == (1.0, 1.0)
    assert found.faithfulness == pytest.approx(twin_faithfulness(c, got, direction), abs=1e-6)
    assert found.faithfulness >= 0.99 and found.method == "learn_mask" and no_hooks_left(c.model)
    assert all(p.requires_grad for p in c.model.parameters())


def test_redundancy_names_both_or_paths() -> None:
    c = CASES["or"]()
    uni = c.universe()
    path_a, path_b = c.known["noising"]
    c, found = _mask("or", "noising")
    report = redundancy(c.model, c.clean, c.corrupted, c.metric, uni, found)
    assert as_pairs(report.members()) == path_a | path_b
    # every group crosses the two paths, and the twin agrees that it is jointly necessary
    for g in report.groups:
        pairs = as_pairs(g)
        assert pairs & path_a and pairs & path_b
        assert twin_faithfulness(c, (path_a | path_b) - pairs, "noising") == 0.0
    # from ACDC's single path, with every unit as a candidate
    pruned = acdc(c.model, c.clean, c.corrupted, c.metric, uni, direction="noising")
    report = redundancy(c.model, c.clean, c.corrupted, c.metric, uni, pruned, candidates=uni)
    assert as_pairs(report.members()) == path_a | path_b
    assert all(abs(report.single[u]) <= 0.05 for g in report.groups for u in g)


def test_redundancy_finds_no_group_in_the_and_case_when_noising() -> None:
    c = CASES["and"]()
    uni = c.universe()
    report = redundancy(c.model, c.clean, c.corrupted, c.metric, uni, Circuit.of(uni), candidates=uni,
                        ablation="resample", direction="noising", max_group=3)
    assert report.groups == ()
    assert {as_pairs([u]).pop() for u, d in report.single.items() if d > 0.5} == c.known["noising"][0]


def test_acdc_equals_the_one_at_a_time_walk_with_evaluate() -> None:
    """Batched decisions = the sequential walk written with plain evaluate calls, for a shuffled order."""
    c = CASES["or"]()
    uni = c.universe()
    order = [uni[i] for i in torch.randperm(len(uni), generator=torch.Generator().manual_seed(3))]
    metric = clean_targets(c.metric, c.clean)
    run = lambda kept: evaluate(c.model, c.clean, c.corrupted, metric, Circuit.of(kept), uni)  # noqa: E731
    full, empty = run(uni), run([])
    kept, f_cur = list(uni), 1.0
    for u in order:
        trial = [v for v in kept if v != u]
        f_new = float(faithfulness(run(trial), full, empty))
        if abs(f_new - f_cur) <= 0.01:
            kept, f_cur = trial, f_new
    found = acdc(c.model, c.clean, c.corrupted, c.metric, uni, order=order, copies=4, direction="noising",
                 schedule="units")
    assert found.circuit == Circuit.of(kept)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_acdc_size_equals_brute_force_minimum(direction: str) -> None:
    """AND case, 10 message units: the smallest faithful circuits by the twin over all 1,024 subsets."""
    c = CASES["and"]()
    uni = c.universe()
    units = sorted(as_pairs(uni))
    smallest = None
    for k in range(len(units) + 1):
        hits = [set(s) for s in itertools.combinations(units, k) if twin_faithfulness(c, set(s), direction) >= 0.99]
        if hits:
            smallest = hits
            break
    assert smallest is not None
    found = acdc(c.model, c.clean, c.corrupted, c.metric, uni, direction=direction)
    assert as_pairs(found.circuit.edges) in smallest
    assert sorted(map(sorted, smallest)) == sorted(map(sorted, c.known[direction]))


def test_many_pairs_at_once_gate_every_pair() -> None:
    """Two pairs of one structure: the returned faithfulness is that of the mean metric over pairs (twin)."""
    c = CASES["and"]()
    other = c.clean.replace(x=c.clean.x.flip(0))  # sources d... : a different clean run of the same structure
    found = acdc(c.model, [c.clean, c.clean], [c.corrupted, other], c.metric, c.universe(), threshold=0.0,
                 direction="noising")
    got = as_pairs(found.circuit.edges)
    assert got == c.known["noising"][0] and found.faithfulness == pytest.approx(1.0, abs=1e-6)


# ------------------------------------------------------------- refusals
def test_denoising_with_zero_ablation_raises() -> None:
    c = CASES["or"]()
    with pytest.raises(ValueError, match="denoising.*resample"):
        acdc(c.model, c.clean, c.corrupted, c.metric, c.universe(), ablation="zero", direction="denoising")


def test_learn_mask_needs_one_of_target_and_size() -> None:
    c = CASES["or"]()
    with pytest.raises(ValueError, match="exactly one of target"):
        learn_mask(c.model, c.clean, c.corrupted, c.metric, c.universe(), target=0.9, size=3,
                   direction="noising")


def test_pairs_of_other_structures_raise() -> None:
    c = CASES["or"]()
    with pytest.raises(ValueError, match="same edge_index"):
        acdc(c.model, [c.clean, CASES["and"]().clean], [c.corrupted, c.corrupted], c.metric, c.universe(),
             direction="noising")


def test_hooks_removed_when_the_metric_raises() -> None:
    c = CASES["or"]()

    def bad(out, graph):  # noqa: ANN001, ANN202
        raise RuntimeError("metric failed")
    with pytest.raises(RuntimeError, match="metric failed"):
        learn_mask(c.model, c.clean, c.corrupted, bad, c.universe(), steps=2, direction="noising")
    assert no_hooks_left(c.model) and all(p.requires_grad for p in c.model.parameters())


def test_redundancy_warns_when_it_caps_the_candidates() -> None:
    c = CASES["or"]()
    uni = c.universe()
    with pytest.warns(UserWarning, match="joint ablations cover the first 3"):
        report = redundancy(c.model, c.clean, c.corrupted, c.metric, uni, Circuit.of(uni), candidates=uni,
                            max_candidates=3, ablation="resample", direction="noising")
    assert len(report.single) == len(uni)
