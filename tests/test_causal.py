"""hookgnn.causal: interchange interventions and DAS on the hand-built Bellman-Ford network."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import handbuilt
from hookgnn.causal import (
    Intervention,
    directions,
    interchange_accuracy,
    interchange_data,
    neurons,
    random_interventions,
    run_interventions,
    task_pairs,
    train_das,
    whole_state,
)
from hookgnn.causal.interchange import node_agreement
from hookgnn.graph import Graph
from hookgnn.spec import FeatureSpec
from hookgnn.tasks import get_task

BF = get_task("bellman_ford")
N, ROUNDS, STEPS = 6, 12, range(1, 7)  # N - 1 rounds after any step let Bellman-Ford finish


@pytest.fixture(scope="module")
def pairs():
    """(base, source) Bellman-Ford graphs that differ in weights only, every node reached."""
    # the hand-built network reads the source flag only (task graphs also carry the node position)
    return [tuple(g.replace(x=g.x[:, :1]) for g in p)
            for p in task_pairs(BF, 40, seed=0, n=N, p=0.6) if bool(p[0]["reach"].all())][:24]


@pytest.fixture(scope="module")
def data(pairs):
    return interchange_data(BF, "d_h", pairs[:12], random_interventions(pairs[:12], STEPS, seed=1), outputs=["d"])


def rotated(q: torch.Tensor) -> torch.nn.Module:
    """The hand-built network with its node state in the basis ``q`` (orthogonal): h' = q h."""
    model = handbuilt.build(ROUNDS)
    with torch.no_grad():
        enc, layer, out = model.node_encoder.lin, model.layers[0], model.decoders["d"].out
        enc.weight.copy_(q @ enc.weight)
        enc.bias.copy_(q @ enc.bias)
        layer.agg.weight[:, :4] = layer.agg.weight[:, :4] @ q.T
        up = layer.up.weight.clone()
        layer.up.weight[:, :4] = q @ up[:, :4]
        layer.up.weight[:, 4:] = q @ up[:, 4:] @ q.T
        layer.up.bias.copy_(q @ layer.up.bias)
        out.weight[:, :4] = out.weight[:, :4] @ q.T
        out.weight[:, 4:] = out.weight[:, 4:] @ q.T
    return model


def test_subspace_swap_is_base_plus_projected_difference():
    torch.manual_seed(0)
    v = torch.randn(2, 5, dtype=torch.float64)
    b, s = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    q, _ = np.linalg.qr(v.numpy().T)
    want = b.numpy() + (s - b).numpy() @ q @ q.T
    assert np.allclose(directions(v).swap(b, s).numpy(), want, rtol=1e-10, atol=1e-12)
    assert torch.equal(neurons(5, [1, 3]).swap(b, s)[:, [0, 2, 4]], b[:, [0, 2, 4]])
    assert torch.equal(whole_state(5).swap(b, s), s)
    with pytest.raises(ValueError, match="linearly dependent"):
        directions(torch.stack([v[0], 2 * v[0]]))
    with pytest.raises(ValueError, match="distinct channels in 0 .. 4"):
        neurons(5, [5])


def test_intervention_equals_a_hand_written_forward_with_the_state_replaced(pairs):
    model = handbuilt.build(ROUNDS)
    chosen = [Intervention(p, (3 * p) % N, 1 + p % 6) for p in range(8)]
    out, batch = run_interventions(model, pairs, chosen, neurons(4, [0]))
    for j, i in enumerate(chosen):
        base, source = (g.replace(x=g.x.double(), edge_attr=g.edge_attr.double()) for g in pairs[i.pair])
        src_state = handbuilt.bellman_ford(source, i.step)[i.step][i.node]
        want = handbuilt.bellman_ford(base, ROUNDS, override={(i.step - 1, i.node): src_state})[-1]
        got = out["d"][batch.ptr[j]:batch.ptr[j + 1]].detach().double().numpy()
        assert np.allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


def test_true_channel_and_whole_state_reach_iia_one_and_a_distractor_is_at_chance(data):
    model = handbuilt.build(ROUNDS)
    for sub in (neurons(4, [0]), whole_state(4)):
        rows = interchange_accuracy(model, data, sub).by_step()
        assert [r["step"] for r in rows] == list(STEPS)
        assert all(r["iia"] == 1.0 for r in rows), rows
    assert int(data.informative.sum()) >= 10  # the counterfactuals do differ from the base outputs
    for ch in (1, 2):  # 2 reads channel 0; 3 is like 1
        rows = interchange_accuracy(model, data, neurons(4, [ch])).by_step()
        assert all(r["iia"] == r["chance"] < 1.0 or r["informative"] == 0 for r in rows), rows
        assert all(r["iia_informative"] == 0.0 for r in rows if r["informative"]), rows


def test_batched_interventions_equal_one_per_forward(data):
    model = handbuilt.build(ROUNDS)
    part = data.subset(range(10))
    one = interchange_accuracy(model, part, neurons(4, [1]), copies=1)
    many = interchange_accuracy(model, part, neurons(4, [1]), copies=64)
    assert torch.equal(one.correct, many.correct)


@pytest.mark.slow  # about 10 s: DAS trains a rotation
def test_das_finds_a_rotated_distance_channel_that_single_neurons_miss(pairs):
    torch.manual_seed(0)
    q = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))[0].float()
    model = rotated(q)
    train_pairs, test_pairs = pairs[:16], pairs[16:]
    train = interchange_data(BF, "d_h", train_pairs, random_interventions(train_pairs, STEPS, seed=2), outputs=["d"])
    test = interchange_data(BF, "d_h", test_pairs, random_interventions(test_pairs, STEPS, seed=3), outputs=["d"])
    assert interchange_accuracy(model, test, whole_state(4)).iia == 1.0
    das = train_das(model, train, k=1, epochs=20, lr=0.05, copies=32, seed=0)
    assert interchange_accuracy(model, test, das).iia >= 0.95
    for j in range(4):
        single = interchange_accuracy(model, test, neurons(4, [j]))
        informative = single.correct[single.informative].double().mean()
        assert informative <= 0.5, (j, single.by_step())


def test_hooks_are_removed_when_an_intervention_raises(pairs, data):
    model = handbuilt.build(ROUNDS)
    with pytest.raises(ValueError, match="swaps rows of width 5"):
        interchange_accuracy(model, data, whole_state(5))
    assert handbuilt.no_hooks_left(model)
    with pytest.raises(ValueError, match="steps 1 .. 12"):
        run_interventions(model, pairs, [Intervention(0, 0, 13)], whole_state(4))
    with pytest.raises(IndexError, match="node 9 out of range"):
        run_interventions(model, pairs, [Intervention(0, 9, 1)], whole_state(4))
    assert handbuilt.no_hooks_left(model)


def test_interchange_data_refuses_other_structures_and_unknown_hints(pairs):
    other = task_pairs(BF, 1, seed=5, n=N + 1, p=0.5)[0][1]
    with pytest.raises(ValueError, match="same nodes and edge_index"):
        interchange_data(BF, "d_h", [(pairs[0][0], other)], [Intervention(0, 0, 1)])
    with pytest.raises(KeyError, match="no hint 'd'"):
        interchange_data(BF, "d", pairs, [Intervention(0, 0, 1)])


def test_pointer_agreement_compares_the_node_pointed_to():
    # nodes 0, 1 with self-loops (edges 0, 1) and two parallel edges 0 -> 1 (edges 2, 3)
    g = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0, 1, 0, 0], [0, 1, 1, 1]]))
    target = torch.tensor([1.0, 0.0, 1.0, 0.0])  # pi = [0, 0]
    fs = FeatureSpec("output", "node", "pointer")
    assert node_agreement(fs, torch.tensor([0.0, 0.0, -1.0, 2.0]), target, g, 0.1).tolist() == [True, True]
    assert node_agreement(fs, torch.tensor([0.0, 3.0, -1.0, 2.0]), target, g, 0.1).tolist() == [True, False]
