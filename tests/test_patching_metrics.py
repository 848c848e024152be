"""Metrics for reasoners: per-graph values, tiling over batched copies, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from hookgnn import Graph
from hookgnn.metrics import (
    DistanceMSE,
    MaskAccuracy,
    OutputSum,
    PointerAccuracy,
    PointerKL,
    PointerLogProb,
    faithfulness,
)
from hookgnn.metrics.features import feature_metrics
from hookgnn.models.base import ModelOutput
from hookgnn.spec import FeatureSpec


def _graph() -> Graph:
    # node 0 <- {0, 1}; node 1 <- {1, 0, 2}; node 2 <- {2}
    ei = torch.tensor([[0, 1, 1, 0, 2, 2], [0, 0, 1, 1, 1, 2]])
    return Graph(x=torch.zeros(3, 1), edge_index=ei)


def test_pointer_log_prob_is_the_mean_log_softmax_of_the_target_edge_per_graph():
    g = _graph()
    logits = torch.tensor([0.0, 1.0, 2.0, 0.0, 0.0, 5.0], requires_grad=True)
    target = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    value = PointerLogProb(target=target)(ModelOutput({"pi": logits}), g)
    want = (math.log(math.e / (1 + math.e)) + math.log(math.e**2 / (math.e**2 + 2)) + 0.0) / 3
    assert value.shape == (1,) and float(value.detach()) == pytest.approx(want, rel=1e-5)
    value.sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_metrics_are_computed_per_copy_of_a_collated_batch():
    g = _graph()
    target = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    logits = torch.randn(6)
    two = Graph.collate([g, g])
    for metric in (PointerLogProb(target=target), PointerAccuracy(target=target), PointerKL(reference=torch.randn(6))):
        one = metric(ModelOutput({"pi": logits}), g)
        both = metric(ModelOutput({"pi": torch.cat([logits, logits])}), two)
        torch.testing.assert_close(both, torch.cat([one, one]))


def test_pointer_accuracy_counts_nodes_whose_argmax_is_the_target():
    g = _graph()
    target = torch.tensor([0.0, 1.0, 1.0, 0.0, 0.0, 1.0])
    logits = torch.tensor([0.0, 1.0, 0.0, 3.0, 0.0, 1.0])  # node 1 points to 0 instead of 1
    assert float(PointerAccuracy(target=target)(ModelOutput({"pi": logits}), g)) == pytest.approx(2 / 3)


def _brute_force_pointer_accuracy(logits, target, g, select=None):
    """Per node, loop over incoming edges in index order: the pointer is the source of the
    first edge attaining the maximum; a node with no incoming edge counts as right."""
    src, dst = g.edge_index.tolist()

    def pointer(scores, v):
        best, who = None, None
        for e in range(len(dst)):
            if dst[e] == v and (best is None or scores[e] > best):
                best, who = scores[e], src[e]
        return who

    hits, weights = [0.0] * g.num_graphs, [0.0] * g.num_graphs
    for v in range(g.num_nodes):
        w = 1.0 if select is None else float(select[v])
        b = int(g.batch[v])
        hits[b] += w * (pointer(logits.tolist(), v) == pointer(target.tolist(), v))
        weights[b] += w
    return torch.tensor([h / max(w, 1e-12) for h, w in zip(hits, weights)])


def test_pointer_accuracy_breaks_ties_and_merges_parallel_edges_like_the_training_metric():
    # node 0 <- {1, 2} tied, target 2: the tie goes to edge 0 (source 1), a miss;
    # node 1 <- {0, 0 (parallel), 2}, target the second 0 -> 1, predicted the first: a hit;
    # node 2 <- {2}: a hit; node 3 has no incoming edge: right by convention.
    ei = torch.tensor([[1, 2, 0, 0, 2, 2], [0, 0, 1, 1, 1, 2]])
    g = Graph(x=torch.zeros(4, 1), edge_index=ei)
    logits = torch.tensor([1.0, 1.0, 3.0, 2.0, 0.0, 0.0])
    target = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    out = ModelOutput({"pi": logits})
    got = PointerAccuracy(target=target)(out, g)
    torch.testing.assert_close(got, torch.tensor([3 / 4]))
    torch.testing.assert_close(got, _brute_force_pointer_accuracy(logits, target, g))
    train = feature_metrics(FeatureSpec("output", "node", "pointer"), logits, target, g)["accuracy"]
    assert float(got) == pytest.approx(train)


def test_pointer_accuracy_matches_a_brute_force_loop_on_random_batches_with_ties():
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        graphs = []
        for _ in range(3):
            n = int(torch.randint(2, 6, (1,), generator=gen))
            e = int(torch.randint(1, 12, (1,), generator=gen))
            graphs.append(Graph(x=torch.zeros(n, 1), edge_index=torch.randint(0, n, (2, e), generator=gen)))
        g = Graph.collate(graphs)
        logits = torch.randint(0, 3, (g.num_edges,), generator=gen).float()  # many ties
        target = (torch.rand(g.num_edges, generator=gen) < 0.4).float()
        select = (torch.rand(g.num_nodes, generator=gen) < 0.7).float()
        out = ModelOutput({"pi": logits})
        torch.testing.assert_close(PointerAccuracy(target=target)(out, g),
                                   _brute_force_pointer_accuracy(logits, target, g))
        torch.testing.assert_close(PointerAccuracy(target=target, select=select)(out, g),
                                   _brute_force_pointer_accuracy(logits, target, g, select))
        train = feature_metrics(FeatureSpec("output", "node", "pointer"), logits, target, g)["accuracy"]
        per_graph = PointerAccuracy(target=target)(out, g)
        sizes = torch.tensor([gr.num_nodes for gr in graphs], dtype=torch.float)
        assert float((per_graph * sizes).sum() / sizes.sum()) == pytest.approx(train)


def test_pointer_kl_is_zero_against_itself_and_positive_otherwise():
    g = _graph()
    logits = torch.randn(6)
    assert float(PointerKL(reference=logits)(ModelOutput({"pi": logits}), g)) == pytest.approx(0.0, abs=1e-6)
    assert float(PointerKL(reference=logits)(ModelOutput({"pi": torch.randn(6)}), g)) > 0


def test_distance_mse_and_mask_accuracy_read_graph_fields():
    from hookgnn.graph import Field

    g = Graph.collate([_graph(), _graph()])
    g = g.with_fields(d=Field(torch.arange(6.0), "node"), m=Field(torch.tensor([1.0, 0, 1, 0, 0, 0]), "node"))
    out = ModelOutput({"d": torch.arange(6.0) + torch.tensor([1.0, 0, 0, 2, 0, 0]), "m": torch.tensor([1.0, -1, -1, 1, -1, -1])})
    torch.testing.assert_close(DistanceMSE()(out, g), torch.tensor([1 / 3, 4 / 3]))
    torch.testing.assert_close(MaskAccuracy("m", "m")(out, g), torch.tensor([2 / 3, 2 / 3]))
    torch.testing.assert_close(OutputSum("d", select=torch.tensor([0.0, 1, 0]))(out, g), torch.tensor([1.0, 4.0]))


def test_faithfulness_is_one_for_the_full_model_and_zero_for_the_corrupted_run():
    assert float(faithfulness(3.0, 3.0, 1.0)) == 1.0
    assert float(faithfulness(1.0, 3.0, 1.0)) == 0.0
