"""benchmarks/train_clrs_graphs.py: CLRS's output score, pooled over test graphs run one by one,
against a hand count in plain Python over the model's own logits (untrained seeded models, tiny graphs)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from hookgnn.tasks import get_task
from hookgnn.training.config import build_model

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("train_clrs_graphs", ROOT / "benchmarks" / "train_clrs_graphs.py")
bench = importlib.util.module_from_spec(spec)
sys.modules["train_clrs_graphs"] = bench
spec.loader.exec_module(bench)


def one_by_one(model, task, sampler: str, n: int, num_graphs: int, seed: int):
    """Each test graph as ``clrs_scores`` draws it (one per forward), with the model's outputs on it."""
    model.eval()
    for i in range(num_graphs):
        g = task.sample(1, sampler, seed=seed + i, n=n)
        with torch.no_grad():
            out = model(g, steps=max(int(g["num_steps"].max()) - 1, 1))
        yield g, out.outputs


def hand_numbered_pointer_right(logits, target, num_nodes: int) -> list[bool]:
    """Per node: is its best slot among the graph's nodes (first on ties) the node number it points to?"""
    right = []
    for v in range(num_nodes):
        row = [float(x) for x in logits[v][:num_nodes]]
        best = max(range(num_nodes), key=lambda j: (row[j], -j))
        right.append(best == int(target[v]))
    return right


def test_mask_score_is_f1_pooled_over_all_test_graphs() -> None:
    task = get_task("mst_kruskal")
    torch.manual_seed(0)
    model = build_model(task, "mpnn", d_hidden=8, max_steps=64)
    got = bench.clrs_scores(model, task, "clrs_mst_kruskal", 6, 3, per_forward=1, seed=5)
    tp = fp = fn = right = items = 0
    for g, outputs in one_by_one(model, task, "clrs_mst_kruskal", 6, 3, seed=5):
        for logit, truth in zip(outputs["in_mst"].tolist(), g["in_mst"].tolist()):
            p, y = logit > 0, truth > 0.5
            tp, fp, fn = tp + (p and y), fp + (p and not y), fn + (not p and y)
            right, items = right + (p == y), items + 1
    assert tp + fn > 0 and fp + fn > 0  # the check has something to count
    assert got["in_mst.f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn), rel=1e-12)
    assert got["in_mst.accuracy"] == pytest.approx(right / items, rel=1e-12)
    assert got["in_mst.score"] == got["in_mst.f1"] == got["score"]


def test_task_score_is_the_mean_of_pointer_and_mask_one_accuracy() -> None:
    task = get_task("topological_sort")
    torch.manual_seed(1)
    model = build_model(task, "mpnn", d_hidden=8, max_steps=64)
    got = bench.clrs_scores(model, task, "clrs_topological_sort", 5, 3, per_forward=1, seed=9)
    pointer, heads = [], []
    for g, outputs in one_by_one(model, task, "clrs_topological_sort", 5, 3, seed=9):
        assert outputs["topo"].shape == (g.num_nodes, g.num_nodes)  # one slot per node of the graph
        pointer += hand_numbered_pointer_right(outputs["topo"], g["topo"], g.num_nodes)
        heads.append(int(outputs["topo_head"].argmax()) == int(g["topo_head"].argmax()))
    assert len(pointer) == 15 and len(heads) == 3
    assert got["topo.score"] == pytest.approx(sum(pointer) / len(pointer), rel=1e-12)
    assert got["topo_head.score"] == pytest.approx(sum(heads) / len(heads), rel=1e-12)
    assert got["score"] == pytest.approx((got["topo.score"] + got["topo_head.score"]) / 2, rel=1e-12)
