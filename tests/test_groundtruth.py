"""The ground truths of hookgnn.groundtruth against plain-Python float64 twins, networkx, and ablations.

Every number is checked against an independent reference: the twins of ``groundtruth_twins``
(no torch), networkx shortest paths, or the model with weights zeroed in a deep copy.
"""

from __future__ import annotations

import copy
import itertools

import networkx as nx
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import groundtruth_twins as twins
from handbuilt import no_hooks_left
from hookgnn.circuits import Circuit, evaluate
from hookgnn.graph import Field, Graph
from hookgnn.groundtruth import GROUND_TRUTHS, GroundTruth, Pair, QueryValue, ground_truth
from hookgnn.groundtruth.bellman_ford import BIG
from hookgnn.nn.wiring import links_of
from hookgnn.patching import MessageEdge, messages, patch
from strategies import graphs

NAMES = sorted(GROUND_TRUTHS)
#: The state channel of each construction that varies with the inputs and that nothing reads.
DECOY = {"minplus_bellman_ford": 2, "or_reachability": 1, "and_conjunction": 2}


@pytest.fixture(scope="module", params=NAMES)
def gt(request: pytest.FixtureRequest) -> GroundTruth:
    return ground_truth(request.param)


def twin(name: str, g: Graph, rounds: int, senders: dict | None = None) -> list[float]:
    """The twin's output per node on ``g`` (inputs read as Python floats)."""
    x = g.x.double().tolist()
    edges = [tuple(e) for e in g.edge_index.t().tolist()]
    if name == "minplus_bellman_ford":
        w = g.edge_attr[:, 0].double().tolist()
        return twins.bellman_ford(x, edges, w, rounds, senders)[0]
    fn = twins.reachability if name == "or_reachability" else twins.conjunction
    return fn(x, edges, rounds, senders)[0]


def twin_states(name: str, g: Graph, rounds: int) -> list[list[list[float]]]:
    x = g.x.double().tolist()
    edges = [tuple(e) for e in g.edge_index.t().tolist()]
    if name == "minplus_bellman_ford":
        return twins.bellman_ford(x, edges, g.edge_attr[:, 0].double().tolist(), rounds)[1]
    fn = twins.reachability if name == "or_reachability" else twins.conjunction
    return fn(x, edges, rounds)[1]


def query_value(values: list[float], g: Graph) -> float:
    return sum(v * q for v, q in zip(values, g["query"].tolist()))


def close(a: float, b: float, scale: float = 1.0) -> bool:
    """Equal up to float32 rounding of values of magnitude ``scale`` (atol and rtol both relative)."""
    tol = 1e-5 * max(scale, abs(a), abs(b))
    return abs(a - b) <= tol


def scale(gt: GroundTruth) -> float:
    return BIG if gt.name == "minplus_bellman_ford" else 1.0


def output_name(gt: GroundTruth) -> str:
    return gt.metric.name


# ----------------------------------------------------------------- the networks are their twins
@settings(max_examples=20)
@given(data=st.data())
def test_networks_match_float64_twins_on_random_graphs(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(NAMES))
    gt = ground_truth(name)
    node_in = gt.model.node_in
    g = data.draw(graphs(max_nodes=6, max_edges=14, node_features=node_in,
                         edge_features=1 if gt.model.edge_in else None))
    steps = data.draw(st.integers(1, gt.rounds))
    with torch.no_grad():
        got = gt.model(g, steps=steps)[output_name(gt)].double().tolist()
    want = twin(name, g, steps)
    assert len(got) == len(want) == g.num_nodes
    assert all(close(a, b, scale(gt)) for a, b in zip(got, want)), (got, want)


@settings(max_examples=20)
@given(n=st.integers(1, 4), data=st.data())
def test_minplus_network_is_bellman_ford_against_networkx(n: int, data: st.DataObject) -> None:
    gt = ground_truth("minplus_bellman_ford")
    pairs = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=10))
    pairs = [(u, v) for u, v in pairs if u != v] + [(v, v) for v in range(n)]
    w = data.draw(st.lists(st.floats(0.1, 2.0), min_size=len(pairs), max_size=len(pairs)))
    w = [0.0 if u == v else c for (u, v), c in zip(pairs, w)]
    x = torch.zeros(n, 2)
    x[0, 0] = 1.0
    g = Graph(x=x, edge_index=torch.tensor(pairs).t(), edge_attr=torch.tensor(w).unsqueeze(1))
    with torch.no_grad():
        d = gt.model(g)["d"].tolist()  # 3 rounds reach every node of a 4-node graph
    nxg = nx.MultiDiGraph()
    nxg.add_nodes_from(range(n))
    nxg.add_weighted_edges_from((u, v, c) for (u, v), c in zip(pairs, w) if u != v)
    ref = nx.single_source_dijkstra_path_length(nxg, 0)
    for v in range(n):
        if v in ref:
            assert close(d[v], ref[v], BIG)
        else:
            assert d[v] >= BIG - 1e-3


# ------------------------------------------------------------------------------- the pairs
def test_pairs_are_reproducible_and_separate_clean_from_corrupted(gt: GroundTruth) -> None:
    a, b = gt.sample_pairs(3, seed=5), gt.sample_pairs(3, seed=5)
    for p, q in zip(a, b):
        assert torch.equal(p.clean.x, q.clean.x) and p.circuit == q.circuit
        assert torch.equal(p.clean.edge_index, p.corrupted.edge_index)
        clean = query_value(twin(gt.name, p.clean, gt.rounds), p.clean)
        bad = query_value(twin(gt.name, p.corrupted, gt.rounds), p.clean)
        assert not close(clean, bad, scale(gt))
        with torch.no_grad():
            assert close(float(gt.metric(gt.model(p.clean), p.clean)), clean, scale(gt))
        for e in p.circuit:  # the circuit names real edges of the graph
            assert p.clean.edge_index[:, e.edge].tolist() == [e.u, e.v]


def _ablated_twin(gt: GroundTruth, p: Pair, kept: frozenset[MessageEdge], ablation: str) -> float:
    """The twin on the clean graph with every message outside ``kept`` ablated (its sender state set
    to the twin's corrupted-run state, or to zeros)."""
    states = twin_states(gt.name, p.corrupted, gt.rounds)
    senders = {}
    for m in gt.messages(p.clean):
        if m not in kept:
            width = len(states[0][0])
            senders[(m.round, m.edge)] = [0.0] * width if ablation == "zero" else states[m.round][m.u]
    return query_value(twin(gt.name, p.clean, gt.rounds, senders), p.clean)


# ------------------------------------------------------------------- the known message circuit
@pytest.mark.parametrize("ablation", ["resample", "zero"])
def test_known_circuit_alone_keeps_the_metric(gt: GroundTruth, ablation: str) -> None:
    for p in gt.sample_pairs(2, seed=1):
        clean = query_value(twin(gt.name, p.clean, gt.rounds), p.clean)
        uni = gt.messages(p.clean)
        for kept in (p.circuit, *p.sufficient):
            ref = _ablated_twin(gt, p, kept, ablation)
            assert close(ref, clean, scale(gt))
            got = evaluate(gt.model, p.clean, p.corrupted, gt.metric, Circuit.of(kept), uni, ablation)
            assert close(got, ref, scale(gt))
        empty = evaluate(gt.model, p.clean, p.corrupted, gt.metric, Circuit(), uni, ablation)
        assert close(empty, _ablated_twin(gt, p, frozenset(), ablation), scale(gt))
        assert not close(empty, clean, scale(gt))  # the test can fail: the rest of the graph matters
    assert no_hooks_left(gt.model)


@settings(max_examples=15)
@given(name=st.sampled_from(NAMES), seed=st.integers(0, 2**31 - 1))
def test_known_circuits_hold_on_random_pairs_by_the_twin(name: str, seed: int) -> None:
    gt = ground_truth(name)
    p = gt.sample_pairs(1, seed)[0]
    clean = query_value(twin(name, p.clean, gt.rounds), p.clean)
    for ablation in ("resample", "zero"):
        empty = _ablated_twin(gt, p, frozenset(), ablation)
        assert not close(empty, clean, scale(gt))
        for kept in (p.circuit, *p.sufficient):
            assert close(_ablated_twin(gt, p, kept, ablation), clean, scale(gt))
        for e in p.circuit:  # one message less: broken for a chain or an AND, kept for OR-redundant paths
            left = _ablated_twin(gt, p, p.circuit - {e}, ablation)
            if gt.structure == "or":
                assert close(left, clean, scale(gt))
            else:  # at most half-way back to the clean value (exactly the empty value for the AND gate)
                assert (left - empty) / (clean - empty) < 0.5


@pytest.mark.parametrize("name", ["and_conjunction", "minplus_bellman_ford"])
def test_removing_any_single_message_of_an_and_circuit_breaks_it(name: str) -> None:
    gt = ground_truth(name)
    for p in gt.sample_pairs(2, seed=2):
        uni = gt.messages(p.clean)
        clean = query_value(twin(gt.name, p.clean, gt.rounds), p.clean)
        empty = _ablated_twin(gt, p, frozenset(), "resample")
        for e in p.circuit:
            ref = _ablated_twin(gt, p, p.circuit - {e}, "resample")
            got = evaluate(gt.model, p.clean, p.corrupted, gt.metric, Circuit.of(p.circuit - {e}), uni)
            assert close(got, ref, scale(gt))
            assert abs(ref - empty) < 0.1 * abs(clean - empty)  # faithfulness below 0.1


def test_or_case_single_noising_patches_are_all_zero_but_joint_ones_are_not() -> None:
    gt = ground_truth("or_reachability")
    for p in gt.sample_pairs(3, seed=3):
        scores = patch(gt.model, p.clean, p.corrupted, gt.metric, messages(gt.model), direction="noising")
        states = twin_states(gt.name, p.corrupted, gt.rounds)
        clean = query_value(twin(gt.name, p.clean, gt.rounds), p.clean)
        for m in gt.messages(p.clean):
            ref = query_value(twin(gt.name, p.clean, gt.rounds, {(m.round, m.edge): states[m.round][m.u]}),
                              p.clean) - clean
            assert ref == 0.0
            assert float(scores.values[m.round, m.edge]) == 0.0
        # one message of each path, patched together, cuts the query off
        a, b = (sorted(s)[0] for s in p.sufficient)
        both = {(m.round, m.edge): states[m.round][m.u] for m in (a, b)}
        assert query_value(twin(gt.name, p.clean, gt.rounds, both), p.clean) - clean == -1.0


def test_and_case_single_denoising_patches_are_all_zero() -> None:
    gt = ground_truth("and_conjunction")
    for p in gt.sample_pairs(3, seed=4):
        scores = patch(gt.model, p.clean, p.corrupted, gt.metric, messages(gt.model), direction="denoising")
        states = twin_states(gt.name, p.clean, gt.rounds)
        bad = query_value(twin(gt.name, p.corrupted, gt.rounds), p.clean)
        for m in gt.messages(p.clean):
            ref = query_value(twin(gt.name, p.corrupted, gt.rounds, {(m.round, m.edge): states[m.round][m.u]}),
                              p.clean) - bad
            assert ref == 0.0 and float(scores.values[m.round, m.edge]) == 0.0


# ----------------------------------------------------------------- the known denoising circuits
def _denoised_twin(gt: GroundTruth, p: Pair, patched: frozenset[MessageEdge] | set[MessageEdge]) -> float:
    """The twin on the corrupted graph with every message of ``patched`` reading the twin's clean sender state."""
    states = twin_states(gt.name, p.clean, gt.rounds)
    senders = {(m.round, m.edge): states[m.round][m.u] for m in patched}
    return query_value(twin(gt.name, p.corrupted, gt.rounds, senders), p.clean)


@settings(max_examples=6, deadline=None)
@given(name=st.sampled_from(NAMES), seed=st.integers(0, 2**31 - 1))
def test_denoising_sufficient_sets_are_the_minimal_ones_by_the_twin(name: str, seed: int) -> None:
    """Every set of up to the largest listed size is sufficient when denoising (the query takes its
    every-message-patched value, by the float64 twin) exactly when it holds a listed set."""
    gt = ground_truth(name)
    p = gt.sample_pairs(1, seed)[0]
    uni = gt.messages(p.clean)
    full, empty = _denoised_twin(gt, p, set(uni)), _denoised_twin(gt, p, set())
    assert abs(full - empty) > 0.1  # the test can fail: patching changes the query
    listed = p.sufficient_for("denoising")
    assert listed and p.circuit_for("denoising") == frozenset().union(*listed)
    tol = 1e-9 * scale(gt)
    for k in range(1, max(len(s) for s in listed) + 1):
        for group in itertools.combinations(uni, k):
            holds = abs(_denoised_twin(gt, p, set(group)) - full) <= tol
            assert holds == any(s <= set(group) for s in listed), (group, listed)


@pytest.mark.parametrize("name", NAMES)
def test_denoising_sufficient_sets_are_faithful_in_the_model(name: str) -> None:
    gt = ground_truth(name)
    for p in gt.sample_pairs(2, seed=0):
        uni = gt.messages(p.clean)
        ref = _denoised_twin(gt, p, set(uni))
        for s in p.sufficient_for("denoising"):
            rest = Circuit.of(m for m in uni if m not in s)  # denoising: everything outside s keeps corrupted values
            got = evaluate(gt.model, p.corrupted, p.clean, gt.metric, rest, uni, "resample")
            assert close(got, ref, scale(gt)), (sorted(s), got, ref)
    assert no_hooks_left(gt.model)


def test_pair_without_denoising_sets_refuses_the_denoising_circuit() -> None:
    g = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0], [1]]))
    p = Pair(g, g, frozenset({MessageEdge(0, 0, 0, 1)}))
    assert p.circuit_for("noising") == p.circuit
    with pytest.raises(ValueError, match="no known denoising circuit"):
        p.circuit_for("denoising")


# ---------------------------------------------------------------------- the known weight circuit
def _zero_outside(gt: GroundTruth) -> tuple[torch.nn.Module, int]:
    """A deep copy of the model with every weight entry of a weight edge outside the circuit set to 0."""
    model = copy.deepcopy(gt.model)
    outside = {(e.round, e.name, e.src.feature, e.dst.feature) for e in gt.weights() if e not in gt.weight_circuit}
    zeroed = 0
    with torch.no_grad():
        for link in links_of(model, range(gt.rounds)):
            if link.weight is None:
                continue
            for j, i in (link.weight != 0).nonzero().tolist():
                if (link.round, link.name, i, j) in outside:
                    link.weight[j, i] = 0.0  # a view of the copy's parameter
                    zeroed += 1
    return model, zeroed


def test_weight_circuit_keeps_the_metric_with_weights_zeroed_in_a_copy(gt: GroundTruth) -> None:
    model, zeroed = _zero_outside(gt)
    before = sum(int((p != 0).sum()) for p in gt.model.parameters())
    after = sum(int((p != 0).sum()) for p in model.parameters())
    assert zeroed > 0 and after < before  # weights were really removed
    for p in gt.sample_pairs(2, seed=6):
        clean = query_value(twin(gt.name, p.clean, gt.rounds), p.clean)
        with torch.no_grad():
            assert close(float(gt.metric(model(p.clean), p.clean)), clean, scale(gt))
        got = evaluate(gt.model, p.clean, p.corrupted, gt.metric, Circuit.of(gt.weight_circuit), gt.weights(), "zero")
        assert close(got, clean, scale(gt))


def test_decoy_channels_carry_information_nothing_reads(gt: GroundTruth) -> None:
    p = gt.sample_pairs(1, seed=7)[0]
    clean, bad = twin_states(gt.name, p.clean, gt.rounds), twin_states(gt.name, p.corrupted, gt.rounds)
    decoy = DECOY[gt.name]
    states = {gt.model.state_hook(t) for t in range(gt.rounds + 1)}
    ends = [c for e in gt.weight_circuit for c in (e.src, e.dst) if c.hook in states]
    assert ends and all(c.feature != decoy for c in ends)
    assert any(e.dst.feature == decoy and e.dst.hook in states for e in gt.weights())
    assert any(abs(a[decoy] - b[decoy]) > 1e-3 for a, b in zip(clean[-1], bad[-1]))


def test_dropping_one_circuit_weight_edge_changes_the_metric() -> None:
    gt = ground_truth("minplus_bellman_ford")
    p = gt.sample_pairs(1, seed=8)[0]
    clean = query_value(twin(gt.name, p.clean, gt.rounds), p.clean)
    edge = next(e for e in sorted(gt.weight_circuit, key=str) if e.name == "agg_e" and e.round == 0)
    kept = Circuit.of(gt.weight_circuit - {edge, *[e for e in gt.weight_circuit if e.name == "agg_e"]})
    got = evaluate(gt.model, p.clean, p.corrupted, gt.metric, kept, gt.weights(), "zero")
    assert got < clean - 0.1  # without the weights' edge reads every distance shrinks


# ------------------------------------------------------------------------------------- errors
def test_unknown_ground_truth_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="or_reachability"):
        ground_truth("nope")


def test_query_metric_names_the_missing_field() -> None:
    g = Graph(x=torch.zeros(2, 1), edge_index=torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(KeyError, match="query"):
        QueryValue("d")({"d": torch.zeros(2)}, g)
    with pytest.raises(ValueError, match="one value per node"):
        QueryValue("d")({"d": torch.zeros(2, 3)}, g.with_fields(query=Field(torch.ones(2), "node")))


def test_pair_refuses_sufficient_subsets_that_do_not_cover_the_circuit() -> None:
    g = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0], [1]]))
    with pytest.raises(ValueError, match="cover the circuit"):
        Pair(g, g, frozenset({MessageEdge(0, 0, 0, 1)}), (frozenset(),))
    with pytest.raises(ValueError, match="n must be"):
        ground_truth("or_reachability").sample_pairs(-1)
