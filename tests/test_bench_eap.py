"""benchmarks/bench_eap.py runs on today's task graphs, and its three methods (the per-graph
textbook loop, the same formula batched in plain torch, hookgnn's eap) give the same scores."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from hookgnn import from_pyg

pytest.importorskip("torch_geometric")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_eap  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread (tests/conftest.py)


def test_bench_eap_methods_agree_on_a_few_graphs_of_the_task() -> None:
    clean, corrupted = bench_eap.dataset(3, 4, 7)
    torch.manual_seed(0)
    net = bench_eap.published_network(width=8).eval()
    model = from_pyg(net, example=clean)  # the network reads what the dataset gives (one input column)
    want = bench_eap.textbook(net, clean, corrupted, 4)
    got = {"batched": bench_eap.batched(net, clean, corrupted, 4, rows=40),  # several chunks
           "hookgnn": bench_eap.as_matrices(net, bench_eap.run_hookgnn(model, clean, corrupted, 4))}
    for name, scores in got.items():
        for linear, w in want.items():
            scale = float(w.abs().max())
            assert scale > 0, linear
            torch.testing.assert_close(scores[linear], w, rtol=1e-4, atol=1e-5 * scale, msg=f"{name} {linear}")
