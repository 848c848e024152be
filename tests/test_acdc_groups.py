"""acdc's hierarchical (group-first) schedule and the gated runs' resuming, against references written
with plain :func:`~hookgnn.circuits.evaluate` calls.

References: the group walk of :mod:`hookgnn.circuits.walk` written as a plain recursion (a block is removed
when the faithfulness moves by at most the threshold, else its halves are tried, first half first) with
one ``evaluate`` per test; the known circuits of the hand-set OR / AND networks (:mod:`logic_nets`,
checked against their float64 twins in ``test_discover.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest
import torch

from hookgnn import Graph, HookedGNN
from hookgnn.circuits import Circuit, acdc, evaluate
from hookgnn.circuits.discover import as_pairs, gated
from hookgnn.metrics.per_graph import OutputSum, faithfulness
from hookgnn.metrics.targets import clean_targets
from hookgnn.patching import MessageEdge, message_edges
from hookgnn.spec import FeatureSpec
from logic_nets import CASES
from logic_nets import as_pairs as unit_pairs

pytestmark = pytest.mark.usefixtures("one_thread")
DIRECTIONS = ("noising", "denoising")


def _kept_set_faithfulness(model, clean, corrupted, metric, universe, direction) -> Callable:  # noqa: ANN001
    """F of a kept set, from plain evaluate calls (the module doc of hookgnn.circuits.discover)."""
    metric = clean_targets(metric, clean)

    def m(kept: Sequence[MessageEdge]) -> float:
        if direction == "noising":
            return evaluate(model, clean, corrupted, metric, Circuit.of(kept), universe)
        rest = [u for u in universe if u not in set(kept)]
        return evaluate(model, corrupted, clean, metric, Circuit.of(rest), universe)
    full, empty = m(universe), m([])
    return lambda kept: float(faithfulness(m(kept), full, empty))


def _group_walk(f_of: Callable, order: list, threshold: float, target: float | None) -> tuple[set, list]:
    """The group walk, one evaluate per block: the kept set and the removal order."""
    kept, removed, f_cur = set(order), [], 1.0

    def visit(block: list) -> None:
        nonlocal kept, f_cur
        f_new = f_of([u for u in order if u in kept and u not in block])
        if abs(f_new - f_cur) <= threshold and (target is None or f_new >= target):
            kept -= set(block)
            removed.extend(block)
            f_cur = f_new
        elif len(block) > 1:
            mid = len(block) // 2
            visit(block[:mid])
            visit(block[mid:])
    visit(order)
    return kept, removed


def _random_net(seed: int, rounds: int = 3) -> tuple[HookedGNN, Graph, Graph, list[MessageEdge]]:
    torch.manual_seed(seed)
    model = HookedGNN("mpnn", 8, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=rounds)
    edge_index = torch.randint(0, 6, (2, 10))  # self-loops and multi-edges allowed
    clean = Graph(x=torch.randn(6, 1), edge_index=edge_index)
    return model, clean, clean.replace(x=torch.randn(6, 1)), message_edges(edge_index, range(rounds), model)


@pytest.mark.parametrize(("seed", "direction"), [(0, "noising"), (1, "denoising")])
def test_group_schedule_equals_the_group_walk_written_with_evaluate(seed: int, direction: str) -> None:
    """A random 3-round MPNN, 30 message units in a shuffled order: the same kept set and removal order."""
    model, clean, corrupted, uni = _random_net(seed)
    order = [uni[i] for i in torch.randperm(len(uni), generator=torch.Generator().manual_seed(seed))]
    metric = OutputSum("d")
    f_of = _kept_set_faithfulness(model, clean, corrupted, metric, uni, direction)
    kept, removed = _group_walk(f_of, order, 0.05, 0.5)
    assert 0 < len(kept) < len(uni)  # the walk has decisions both ways
    found = acdc(model, clean, corrupted, metric, uni, threshold=0.05, target=0.5, order=order, copies=4,
                 direction=direction, schedule="groups")
    assert found.circuit == Circuit.of(kept) and list(found.dropped) == removed
    assert found.faithfulness == pytest.approx(f_of(sorted(kept)), rel=1e-5, abs=1e-5)
    assert found.faithfulness >= 0.5 - 1e-6


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("name", list(CASES))
def test_group_schedule_returns_a_known_circuit_and_each_unit_fails_alone(name: str, direction: str) -> None:
    """OR and AND networks: a known minimal circuit, and every kept unit, removed alone from it, breaks it."""
    c = CASES[name]()
    uni = c.universe()
    found = acdc(c.model, c.clean, c.corrupted, c.metric, uni, direction=direction, schedule="groups")
    got = unit_pairs(found.circuit.edges)
    assert got in c.known[direction]
    f_of = _kept_set_faithfulness(c.model, c.clean, c.corrupted, c.metric, uni, direction)
    kept = list(found.circuit.edges)
    assert found.faithfulness == pytest.approx(f_of(kept), abs=1e-6)
    assert all(abs(f_of([v for v in kept if v != u]) - found.faithfulness) > 0.01 for u in kept)


def test_unknown_schedule_raises() -> None:
    """A ValueError naming the argument (or, under the test suite's runtime type checks, a TypeError)."""
    c = CASES["or"]()
    with pytest.raises((ValueError, TypeError), match="schedule"):
        acdc(c.model, c.clean, c.corrupted, c.metric, c.universe(), direction="noising", schedule="levels")


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_single_copy_runs_resumed_from_recorded_states_match_evaluate(direction: str) -> None:
    """One copy per forward: the first is run whole and records its round states, later ones resume from
    them; each equals evaluate of its circuit."""
    model, clean, corrupted, uni = _random_net(3, rounds=4)
    metric = OutputSum("d")
    run = gated(model, as_pairs(clean, corrupted), metric, uni, "resample", direction, None, 8)
    pinned = clean_targets(metric, clean)
    gen = torch.Generator().manual_seed(0)
    late = torch.tensor([u.round >= 2 for u in uni])
    for i in range(6):
        gates = torch.ones(len(uni))
        flip = (torch.rand(len(uni), generator=gen) < 0.3) & (late if i % 2 else torch.ones(len(uni), dtype=torch.bool))
        gates[flip] = 0.0
        got = float(run.metrics(gates[None])[0])
        kept = [u for u, g in zip(uni, gates) if g > 0]
        if direction == "noising":
            want = evaluate(model, clean, corrupted, pinned, Circuit.of(kept), uni)
        else:
            want = evaluate(model, corrupted, clean, pinned, Circuit.of([u for u in uni if u not in set(kept)]), uni)
        assert got == pytest.approx(want, rel=1e-5, abs=1e-5 * max(1.0, abs(want)))
    assert run.entering  # states were recorded and reused


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_faithfulness_of_several_pairs_is_the_mean_metric_of_evaluate_pair_by_pair(direction: str) -> None:
    """Three pairs of one structure (acdc evaluates them in one disjoint union, with the gated run's ablation
    values): the faithfulness equals F of the metric averaged over plain per-pair evaluate calls."""
    model, clean, _, uni = _random_net(2)
    torch.manual_seed(3)
    cleans = [clean.replace(x=torch.randn(6, 1)) for _ in range(3)]
    corrupteds = [clean.replace(x=torch.randn(6, 1)) for _ in range(3)]
    metric = OutputSum("d")
    found = acdc(model, cleans, corrupteds, metric, uni, threshold=0.05, direction=direction)
    kept = set(found.circuit.edges)

    def m(keep: set) -> float:
        vals = []
        for cl, co in zip(cleans, corrupteds):
            pinned = clean_targets(metric, cl)
            if direction == "noising":
                vals.append(evaluate(model, cl, co, pinned, Circuit.of(keep), uni))
            else:
                vals.append(evaluate(model, co, cl, pinned, Circuit.of(u for u in uni if u not in keep), uni))
        return sum(vals) / len(vals)
    want = float(faithfulness(m(kept), m(set(uni)), m(set())))
    assert 0 < len(kept) < len(uni)
    assert found.faithfulness == pytest.approx(want, rel=1e-5, abs=1e-5)


def test_evaluate_names_the_carrier_when_a_message_edge_is_past_its_rows() -> None:
    """A message edge whose index is past the graph's edges is an error naming the hook, not a silent no-op."""
    model, clean, corrupted, _ = _random_net(0)
    far = MessageEdge(1, clean.num_edges + 3, 0, 1)
    with pytest.raises(IndexError, match="hook_src"):
        evaluate(model, clean, corrupted, OutputSum("d"), Circuit(), [far])


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("relaxed", [False, True], ids=["binary", "relaxed"])
def test_gated_runs_over_several_pairs_gate_every_pair(direction: str, relaxed: bool) -> None:
    """Three pairs in one disjoint union: a 0/1 gate vector's metric equals the mean over the pairs of plain
    per-pair ``evaluate`` calls (a unit names one pair's rows and is ablated in every pair). ``relaxed``: the
    same gates with ``requires_grad``, which takes the mixing path learn_mask optimises."""
    model, clean, _, uni = _random_net(4)
    torch.manual_seed(5)
    cleans = [clean.replace(x=torch.randn(6, 1)) for _ in range(3)]
    corrupteds = [clean.replace(x=torch.randn(6, 1)) for _ in range(3)]
    metric = OutputSum("d")
    run = gated(model, as_pairs(cleans, corrupteds), metric, uni, "resample", direction, None, 8)
    gen = torch.Generator().manual_seed(1)
    gates = (torch.rand(4, len(uni), generator=gen) < 0.5).float()
    gates[0], gates[1] = 0.0, 1.0
    got = run.metrics(gates.requires_grad_(relaxed)).detach()
    for row, g in enumerate(gates.detach()):
        kept = {u for u, on in zip(uni, g) if on > 0}
        vals = []
        for cl, co in zip(cleans, corrupteds):
            pinned = clean_targets(metric, cl)
            if direction == "noising":
                vals.append(evaluate(model, cl, co, pinned, Circuit.of(kept), uni))
            else:
                vals.append(evaluate(model, co, cl, pinned, Circuit.of(u for u in uni if u not in kept), uni))
        want = sum(vals) / len(vals)
        assert float(got[row]) == pytest.approx(want, rel=1e-5, abs=1e-5 * max(1.0, abs(want)))
