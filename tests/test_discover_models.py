"""Discovery on conformance-matrix kinds (a built-in processor, a wrapped PyG model): the returned
faithfulness against messages ablated by hand in the plain network, and gated weight edges
against weights zeroed in a deep copy."""

from __future__ import annotations

import copy

import pytest
import torch

from hookgnn.circuits import acdc, learn_mask
from hookgnn.circuits.gates import Gated
from hookgnn.metrics.targets import clean_targets
from hookgnn.nn.wiring import links_of
from hookgnn.patching import message_edges
from hookgnn.patching.components import WeightEdge, weight_edges
from model_zoo import KINDS as ALL_KINDS
from model_zoo import Case, case
import plain_torch as plain

pytestmark = pytest.mark.usefixtures("one_thread")
KINDS = ("hooked-mpnn", "pyg-gine")


def _plain_faithfulness(c: Case, kept: dict[int, list[int]], universe: dict[int, list[int]], direction: str) -> float:
    """F of a message circuit in the plain network: rows of each round's source rows swapped by hand."""
    base, src = plain.pair(c, direction)
    _, m_src, _, _ = plain.record(c, src)

    def metric(swapped: dict[int, list[int]]) -> float:
        return plain.run(c, base, msg=plain.set_rows(swapped, m_src))

    outside = {t: [e for e in rows if e not in kept.get(t, [])] for t, rows in universe.items()}
    if direction == "noising":
        m_c, m_full, m_empty = metric(outside), metric({}), metric(universe)
    else:
        m_c, m_full, m_empty = metric(kept), metric(universe), metric({})
    return (m_c - m_empty) / (m_full - m_empty)


@pytest.mark.parametrize("direction", ("noising", "denoising"))
@pytest.mark.parametrize("kind", KINDS)
def test_acdc_faithfulness_equals_messages_ablated_by_hand(kind: str, direction: str) -> None:
    c = case(kind)
    T = c.model.num_rounds
    uni = [e for e in message_edges(c.clean.edge_index, [T - 2, T - 1], c.model) if e.edge < 6]
    found = acdc(c.model, c.clean, c.corrupted, c.metric, uni, threshold=1.0, target=0.5,
                 direction=direction)
    kept: dict[int, list[int]] = {}
    for e in found.circuit.edges:
        kept.setdefault(e.round, []).append(e.edge)
    want = _plain_faithfulness(c, kept, {T - 2: list(range(6)), T - 1: list(range(6))}, direction)
    assert found.faithfulness == pytest.approx(want, rel=1e-4, abs=1e-4)
    assert found.size < len(uni)  # something was pruned


@pytest.mark.parametrize("kind", KINDS)
def test_learn_mask_faithfulness_equals_messages_ablated_by_hand(kind: str) -> None:
    c = case(kind)
    T = c.model.num_rounds
    uni = [e for e in message_edges(c.clean.edge_index, [T - 1], c.model)]
    found = learn_mask(c.model, c.clean, c.corrupted, c.metric, uni, size=4, steps=15, direction="noising")
    kept = {T - 1: [e.edge for e in found.circuit.edges]}
    want = _plain_faithfulness(c, kept, {T - 1: list(range(len(uni)))}, "noising")
    assert found.size == 4 and found.faithfulness == pytest.approx(want, rel=1e-4, abs=1e-4)


def _weight_universe(c: Case, count: int) -> tuple[list[list[WeightEdge]], list[tuple[str, tuple[int, ...]]]]:
    """``count`` parameter entries and the weight edges of each (a tied weight serves every round)."""
    entries: dict[tuple[str, tuple[int, ...]], list[WeightEdge]] = {}
    for link in links_of(c.model, range(c.model.num_rounds)):
        if link.weight is None or link.selection:
            continue
        for e in weight_edges(link, link.weight.shape[1], link.weight.shape[0]):
            entries.setdefault(plain.param_entry(c.raw, link.weight, e.dst.feature, e.src.feature), []).append(e)
    keys = list(entries)[:: max(1, len(entries) // count)][:count]
    return [entries[k] for k in keys], keys


@pytest.mark.parametrize("kind", KINDS)
def test_gated_weight_edges_equal_weights_zeroed_in_a_copy(kind: str) -> None:
    """Zero ablation, 0/1 gates per copy: each copy equals the plain network with the ungated weights zeroed."""
    c = case(kind)
    groups, keys = _weight_universe(c, 6)
    uni = [e for g in groups for e in g]
    gates = (torch.rand(4, len(groups), generator=torch.Generator().manual_seed(1)) > 0.5).float()
    run = Gated(c.model, c.clean, c.corrupted, clean_targets(c.metric, c.clean), uni, "zero", "noising")
    got = run.metrics(gates.repeat_interleave(torch.tensor([len(g) for g in groups]), dim=1))
    for j in range(gates.shape[0]):
        zeroed = copy.deepcopy(c.raw)
        params = dict(zeroed.named_parameters())
        with torch.no_grad():
            for (name, index), g in zip(keys, gates[j].tolist()):
                if g == 0.0:
                    params[name][index] = 0.0
            want = float(c.metric(c.call(zeroed, c.clean), c.clean).mean())
        assert float(got[j]) == pytest.approx(want, rel=1e-4, abs=1e-5)
    assert run.forwards == 1


def test_weight_links_without_a_matrix_are_refused() -> None:
    c = case("hooked-mpnn")
    link = next(l for l in links_of(c.model, [0]) if l.weight is None)
    edge = weight_edges(link, 8, 8)[0]
    with pytest.raises(NotImplementedError, match=f"link {link.name}.*no weight matrix"):
        Gated(c.model, c.clean, c.corrupted, c.metric, [edge], "resample", "noising")


def test_gcn_messages_are_refused_naming_the_axis() -> None:
    c = case("pyg-gcn")
    uni = message_edges(c.clean.edge_index, [0], c.model)
    with pytest.raises(ValueError, match="axis 'none'.*own edge list"):
        acdc(c.model, c.clean, c.corrupted, c.metric, uni, direction="noising")


@pytest.mark.slow
@pytest.mark.parametrize("direction", ("noising", "denoising"))
@pytest.mark.parametrize("kind", list(ALL_KINDS))
def test_discovery_on_every_model_kind(kind: str, direction: str) -> None:
    """The whole conformance matrix: acdc and learn_mask over the last round's messages, against the
    plain network with messages swapped by hand; GCN (messages on its own edge list) is refused."""
    c = case(kind)
    T = c.model.num_rounds
    uni = message_edges(c.clean.edge_index, [T - 1], c.model)
    if kind == "pyg-gcn":
        with pytest.raises(ValueError, match="axis 'none'.*own edge list"):
            acdc(c.model, c.clean, c.corrupted, c.metric, uni, direction=direction)
        return
    every = {T - 1: list(range(len(uni)))}
    pruned = acdc(c.model, c.clean, c.corrupted, c.metric, uni, threshold=1.0, target=0.5, direction=direction)
    mask = learn_mask(c.model, c.clean, c.corrupted, c.metric, uni, size=3, steps=3, direction=direction)
    for found in (pruned, mask):
        want = _plain_faithfulness(c, {T - 1: [e.edge for e in found.circuit.edges]}, every, direction)
        assert found.faithfulness == pytest.approx(want, rel=1e-4, abs=1e-4)
    assert pruned.faithfulness >= 0.5 - 1e-4


@pytest.mark.parametrize("direction", ("noising", "denoising"))
def test_gated_copies_resumed_at_a_round_equal_messages_swapped_by_hand(direction: str) -> None:
    """Copies that agree on round 0 resume the run at round 1 (HookedGNN); each equals the plain network."""
    c = case("hooked-mpnn")
    T, E = c.model.num_rounds, c.clean.num_edges
    uni = message_edges(c.clean.edge_index, range(T), c.model)
    gates = (torch.rand(5, len(uni), generator=torch.Generator().manual_seed(2)) > 0.5).float()
    gates[:, :E] = gates[0, :E]  # round 0 alike in every copy
    base, src = plain.pair(c, direction)
    run = Gated(c.model, base, src, clean_targets(c.metric, c.clean), uni, "resample", direction)
    got = run.metrics(gates)
    # one run of one copy records the states entering every round, then the copies resume at round 1
    assert sorted(t for t, _ in run.entering) == list(range(1, T)) and run.forwards == 2
    _, m_src, _, _ = plain.record(c, src)
    for j in range(gates.shape[0]):
        swap = gates[j] == 0 if direction == "noising" else gates[j] == 1
        rows = {t: [e for e in range(E) if swap[t * E + e]] for t in range(T)}
        want = plain.run(c, base, msg=plain.set_rows(rows, m_src))
        assert float(got[j]) == pytest.approx(want, rel=1e-4, abs=1e-5)
