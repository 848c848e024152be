"""Benchmark: batched EAP-IG at neuron and weight level against a one-graph-at-a-time loop.

The published Bellman-Ford setting (MINAR, arXiv 2602.21442): a PyTorch Geometric network of
two min-aggregation ``MessagePassing`` layers (widths 1 -> 8 -> 1, message and update MLPs
64 wide, a relu between the layers), wrapped with :func:`hookgnn.from_pyg`; ``--graphs``
clean/corrupted pairs of weighted paths (``resample_weights``), metric: the L1 distance
error of each graph.

* ``loop``: ``eap(..., level="weight", ig_steps=K)`` on each pair alone, scores averaged;
* ``batched``: one ``eap`` call on the disjoint union of all pairs (the IG copies of all
  graphs in one forward+backward per chunk).

The two give the same scores (the metric is the mean over graphs and EAP-IG is linear in
it); the script checks that, then prints time per method (median of ``--runs``) and the
ratio.

    python benchmarks/bench_eap.py --quick
    python benchmarks/bench_eap.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hookgnn import Graph, from_pyg
from hookgnn.attribution import eap
from hookgnn.metrics.per_graph import from_loss
from hookgnn.tasks import get_task
from hookgnn.tasks.corruptions import sample_pairs


def published_network(width: int = 64) -> nn.Module:
    """The published architecture, in PyG: min aggregation, 1 -> 8 -> 1, MLPs ``width`` wide."""
    from torch_geometric.nn import MessagePassing

    class MinAggConv(MessagePassing):
        def __init__(self, d_in: int, d_out: int) -> None:
            super().__init__(aggr="min")
            self.msg_mlp = nn.Sequential(nn.Linear(d_in + 1, width), nn.ReLU(), nn.Linear(width, d_out))
            self.upd_mlp = nn.Sequential(nn.Linear(d_out + d_in, width), nn.ReLU(), nn.Linear(width, d_out))

        def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
            return self.propagate(edge_index, x=x, edge_attr=edge_attr)

        def message(self, x_j, edge_attr):  # noqa: ANN001, ANN201
            return F.relu(self.msg_mlp(torch.cat([x_j, edge_attr], dim=-1)))

        def update(self, aggr_out, x):  # noqa: ANN001, ANN201
            return self.upd_mlp(torch.cat([aggr_out, x], dim=-1))

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.convs = nn.ModuleList([MinAggConv(1, 8), MinAggConv(8, 1)])
            self.act = nn.ReLU()

        def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
            return self.convs[1](self.act(self.convs[0](x, edge_index, edge_attr)), edge_index, edge_attr)

    return Net()


def timed(fn: Any, runs: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3, out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--graphs", type=int, default=250)
    p.add_argument("--nodes", type=int, default=8)
    p.add_argument("--ig-steps", type=int, default=16)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="40 graphs, one run")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    if args.quick:
        args.graphs, args.runs = 40, 1
    torch.manual_seed(0)
    clean, corrupted = sample_pairs(get_task("bellman_ford"), args.graphs, "resample_weights", "weighted_path",
                                    seed=1, n=args.nodes)
    model = from_pyg(published_network().eval(), example=clean)
    metric = from_loss(F.l1_loss, target="d")
    pairs = list(zip(clean.split(), corrupted.split()))

    def loop() -> torch.Tensor:
        return torch.stack([eap(model, c, k, metric, ig_steps=args.ig_steps, level="weight").scores
                            for c, k in pairs]).mean(0)

    def batched() -> torch.Tensor:
        return eap(model, clean, corrupted, metric, ig_steps=args.ig_steps, level="weight").scores

    loop_ms, a = timed(loop, args.runs)
    batched_ms, b = timed(batched, args.runs)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4)
    row = dict(workload=f"EAP-IG weight edges, {args.graphs} graphs, {args.ig_steps} steps", edges=int(b.numel()),
               peer="per-graph loop", peer_ms=loop_ms, hookgnn_ms=batched_ms, ratio=loop_ms / batched_ms,
               threads=torch.get_num_threads())
    print(f"{'workload':<48} {'peer':<16} {'peer ms':>9} {'hookgnn ms':>10} {'ratio':>6}")
    print(f"{row['workload']:<48} {row['peer']:<16} {loop_ms:>9.0f} {batched_ms:>10.0f} {row['ratio']:>6.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": [row]}, f, indent=2)


if __name__ == "__main__":
    main()
