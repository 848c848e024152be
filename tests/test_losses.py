"""Training losses against hand-computed values and brute-force loops."""

import math

import pytest
import torch

from hookgnn.graph import Field, Graph
from hookgnn.models import ModelOutput
from hookgnn.spec import FeatureSpec
from hookgnn.tasks import get_task
from hookgnn.training import hint_loss, item_losses, output_loss, task_loss

POINTER = FeatureSpec("output", "node", "pointer")


def _random_batch(seed: int = 0) -> Graph:
    return get_task("bfs").sample(3, "erdos_renyi", seed=seed, n=6, p=0.5)


def test_pointer_loss_equals_per_node_negative_log_softmax():
    g = _random_batch()
    logits = torch.randn(g.num_edges, generator=torch.Generator().manual_seed(1))
    target = g["pi"]
    src, dst = g.edge_index
    expected = []
    for v in range(g.num_nodes):
        incoming = (dst == v).nonzero().flatten()
        true_edge = int((target[incoming] == 1).nonzero()[0, 0])
        expected.append(-torch.log_softmax(logits[incoming], 0)[true_edge])
    got = item_losses(POINTER, logits, target, g)
    torch.testing.assert_close(got, torch.stack(expected))
    torch.testing.assert_close(output_loss(POINTER, logits, target, g), torch.stack(expected).mean())


def test_pointer_loss_is_log_in_degree_for_uniform_logits():
    g = _random_batch(2)
    in_degree = torch.bincount(g.edge_index[1], minlength=g.num_nodes).float()
    torch.testing.assert_close(item_losses(POINTER, torch.zeros(g.num_edges), g["pi"], g), in_degree.log())


def test_mask_one_loss_is_cross_entropy_over_each_graphs_nodes():
    g = _random_batch()
    spec = FeatureSpec("input", "node", "mask_one")
    logits = torch.randn(g.num_nodes, generator=torch.Generator().manual_seed(3))
    expected = []
    for i in range(g.num_graphs):
        lo, hi = int(g.ptr[i]), int(g.ptr[i + 1])
        expected.append(torch.nn.functional.cross_entropy(logits[lo:hi][None], g["s"][lo:hi].argmax()[None]))
    torch.testing.assert_close(item_losses(spec, logits, g["s"], g), torch.stack(expected))


def test_mask_categorical_and_scalar_losses_match_torch_functions():
    g = Graph(x=torch.zeros(3, 1), edge_index=torch.zeros(2, 0, dtype=torch.long))
    pred = torch.tensor([0.3, -2.0, 1.5])
    target = torch.tensor([1.0, 0.0, 0.0])
    torch.testing.assert_close(
        output_loss(FeatureSpec("output", "node", "mask"), pred, target, g),
        torch.nn.functional.binary_cross_entropy_with_logits(pred, target),
    )
    torch.testing.assert_close(output_loss(FeatureSpec("output", "node", "scalar"), pred, target, g),
                               torch.nn.functional.mse_loss(pred, target))
    logits = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    classes = torch.tensor([0, 3, 1])
    torch.testing.assert_close(
        output_loss(FeatureSpec("output", "node", "categorical", dim=4), logits, torch.eye(4)[classes], g),
        torch.nn.functional.cross_entropy(logits, classes),
    )


def _two_graphs_with_steps(steps: tuple[int, int], trajectory_len: int) -> Graph:
    return Graph(
        x=torch.zeros(3, 1), edge_index=torch.zeros(2, 0, dtype=torch.long), ptr=torch.tensor([0, 1, 3]),
        fields={"num_steps": Field(torch.tensor(steps), "graph"),
                "h": Field(torch.arange(trajectory_len * 3.0).reshape(trajectory_len, 3), "node", time=True)},
    )


def test_hint_loss_ignores_steps_past_each_graphs_trajectory():
    spec = FeatureSpec("hint", "node", "scalar")
    g = _two_graphs_with_steps((2, 4), 4)  # graph 0 (node 0): 1 supervised step; graph 1: 3
    traj = g["h"]
    preds = traj[1:].clone()
    preds[0, 0] += 1.0  # node 0, step 1: error 1, supervised
    preds[1, 1] += 2.0  # node 1, step 2: error 2, supervised
    # Hand count: 1 + 3 + 3 = 7 supervised (step, node) pairs; squared errors 1 + 4.
    torch.testing.assert_close(hint_loss(spec, preds, traj, g), torch.tensor(5.0 / 7.0))
    padded = preds.clone()
    padded[1:, 0] += 100.0  # node 0 past its last step: padding
    torch.testing.assert_close(hint_loss(spec, padded, traj, g), torch.tensor(5.0 / 7.0))


def test_hint_loss_of_extra_rounds_is_unsupervised():
    spec = FeatureSpec("hint", "node", "scalar")
    g = _two_graphs_with_steps((2, 3), 3)
    preds = torch.cat([g["h"][1:], torch.full((4, 3), 50.0)])  # 2 real rounds, 4 extra
    assert float(hint_loss(spec, preds, g["h"], g)) == 0.0


def test_hint_loss_is_zero_when_no_graph_has_a_step():
    spec = FeatureSpec("hint", "node", "mask")
    g = _two_graphs_with_steps((1, 1), 1)
    assert float(hint_loss(spec, torch.randn(3, 3), g["h"].clamp(max=1), g)) == 0.0


def test_task_loss_sums_parts_and_hint_weight_scales_hints():
    task = get_task("bfs")
    g = task.sample(2, "path", seed=0, n=4)
    rounds = int(g["num_steps"].max()) - 1
    gen = torch.Generator().manual_seed(0)
    out = ModelOutput(
        outputs={"pi": torch.randn(g.num_edges, generator=gen), "reach": torch.randn(g.num_nodes, generator=gen)},
        hints={"reach_h": torch.randn(rounds, g.num_nodes, generator=gen)},
    )
    total, parts = task_loss(out, g, task.spec, hint_weight=0.5)
    assert total.item() == pytest.approx(parts["out/pi"] + parts["out/reach"] + 0.5 * parts["hint/reach_h"], rel=1e-5)
    no_hints, parts0 = task_loss(out, g, task.spec, hint_weight=0.0)
    assert "hint/reach_h" not in parts0
    assert math.isclose(no_hints.item(), parts["out/pi"] + parts["out/reach"], rel_tol=1e-5)
