"""hookgnn.causal.output_iia: node-level IIA per output, with ceiling and chance, against hand recomputations."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import handbuilt
from hookgnn import HookedGNN
from hookgnn.causal import (Intervention, downstream_nodes, interchange_data, neurons, output_iia,
                            random_interventions, task_pairs, whole_state)
from hookgnn.graph import Graph
from hookgnn.tasks import get_task

BF = get_task("bellman_ford")
N, ROUNDS, STEPS = 6, 12, range(1, 7)


@pytest.fixture(scope="module")
def pairs():
    # the hand-built network reads the source flag only (task graphs also carry the node position)
    return [tuple(g.replace(x=g.x[:, :1]) for g in p)
            for p in task_pairs(BF, 40, seed=0, n=N, p=0.6) if bool(p[0]["reach"].all())][:12]


def test_handbuilt_distance_channel_is_right_at_every_node_and_a_distractor_scores_chance(pairs):
    model = handbuilt.build(ROUNDS)
    data = interchange_data(BF, "d_h", pairs, random_interventions(pairs, STEPS, seed=1), outputs=["d"])
    true = output_iia(model, data, neurons(4, [0]))["d"]
    assert true.iia == 1.0 and true.iia_downstream == 1.0
    assert bool(true.base_correct.all())  # the hand-built network is exact: ceiling 1
    assert int((~true.unchanged).sum()) >= 10  # the counterfactuals do change some nodes
    for ch in (1, 2):
        r = output_iia(model, data, neurons(4, [ch]))["d"]
        assert torch.equal(r.correct, r.unchanged), ch  # nothing moves: right exactly where nothing changed
        for row in r.by_step():
            assert row["iia"] == row["chance"] and row["ceiling"] == 1.0
            assert row["iia_changed"] == 0.0 or row["changed"] == 0


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 7), edges=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=14),
       node=st.integers(0, 6))
def test_downstream_nodes_equal_networkx_descendants(n, edges, node):
    edges = [(u, v) for u, v in edges if u < n and v < n]  # self-loops and multi-edges kept
    node = node % n
    ei = torch.tensor(edges, dtype=torch.long).reshape(-1, 2).T
    g = Graph(x=torch.zeros(n, 1), edge_index=ei)
    ref = nx.MultiDiGraph()
    ref.add_nodes_from(range(n))
    ref.add_edges_from(edges)
    want = nx.descendants(ref, node) | {node}
    assert downstream_nodes(g, node).tolist() == [u in want for u in range(n)]


def _pointed(scores: np.ndarray, ei: np.ndarray, n: int) -> list[int]:
    """By hand: each node's parent, the source of its highest-scoring in-edge (first on ties)."""
    out = []
    for v in range(n):
        best, parent = -np.inf, -1
        for e in range(ei.shape[1]):
            if ei[1, e] == v and scores[e] > best:
                best, parent = scores[e], int(ei[0, e])
        out.append(parent)
    return out


def test_pointer_and_scalar_scores_equal_a_hand_written_intervention():
    torch.manual_seed(0)
    model = HookedGNN("mpnn", 8, node_in=2, edge_in=1, spec=BF.spec, max_steps=4).eval()
    pairs = task_pairs(BF, 5, seed=3, n=6, p=0.5)
    chosen = [Intervention(p, (2 * p + 1) % 6, 1 + p % 4) for p in range(5)]
    tol = 0.2
    data = interchange_data(BF, "d_h", pairs, chosen, outputs=["pi", "d"], tol=tol)
    got = output_iia(model, data, whole_state(8), copies=2)
    want = {"pi": ([], [], []), "d": ([], [], [])}
    for i, cf in zip(chosen, data.counterfactuals):
        base, source = pairs[i.pair]
        name = model.state_hook(i.step)
        _, cache = model.run_with_cache(source, names_filter=[name])

        def put(act, hook, row=cache[name][i.node]):
            act = act.clone()
            act[i.node] = row
            return act
        with torch.no_grad():
            out = model.run_with_hooks(base, fwd_hooks=[(name, put)])
            plain = model(base)
        ei, n = base.edge_index.numpy(), base.num_nodes
        ptr = {k: _pointed(v.detach().double().numpy(), ei, n) for k, v in
               (("out", out["pi"]), ("plain", plain["pi"]), ("cf", cf["pi"]), ("base", base["pi"]))}
        want["pi"][0].extend(a == b for a, b in zip(ptr["out"], ptr["cf"]))
        want["pi"][1].extend(a == b for a, b in zip(ptr["plain"], ptr["base"]))
        want["pi"][2].extend(a == b for a, b in zip(ptr["base"], ptr["cf"]))
        d_cf, d_base = cf["d"].double().numpy(), base["d"].double().numpy()
        s_cf, s_base = (np.abs(d).max() if np.abs(d).max() > 0 else 1.0 for d in (d_cf, d_base))
        want["d"][0].extend(np.abs(out["d"].double().numpy() - d_cf) <= tol * s_cf)
        want["d"][1].extend(np.abs(plain["d"].double().numpy() - d_base) <= tol * s_base)
        want["d"][2].extend(np.abs(d_base - d_cf) <= tol * s_cf)
    for k in ("pi", "d"):
        r = got[k]
        assert r.correct.tolist() == [bool(x) for x in want[k][0]], k
        assert r.base_correct.tolist() == [bool(x) for x in want[k][1]], k
        assert r.unchanged.tolist() == [bool(x) for x in want[k][2]], k
        assert 0 < sum(want[k][0]) < len(want[k][0]), k  # an untrained model: some nodes right, some wrong
        assert r.iia == pytest.approx(np.mean(want[k][0]), rel=1e-12)
    rows = got["pi"].by_step()
    assert [row["n"] for row in rows] == [2, 1, 1, 1] and [row["output"] for row in rows] == ["pi"] * 4


def test_output_iia_refuses_no_interventions_and_leaves_no_hooks(pairs):
    model = handbuilt.build(ROUNDS)
    data = interchange_data(BF, "d_h", pairs, [Intervention(0, 0, 1)], outputs=["d"])
    with pytest.raises(ValueError, match="no interventions"):
        output_iia(model, data.subset([]), whole_state(4))
    with pytest.raises(ValueError, match="swaps rows of width 5"):
        output_iia(model, data, whole_state(5))
    assert handbuilt.no_hooks_left(model)
    with pytest.raises(IndexError, match="node 7 out of range"):
        downstream_nodes(pairs[0][0], 7)
