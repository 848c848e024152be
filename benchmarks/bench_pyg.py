"""Benchmark the cost of wrapping a PyTorch Geometric model with ``hookgnn.from_pyg``.

Workloads: one random graph with ``N`` nodes and ``E`` random edges (default N = 10k,
E = 100k), features ``d = 64``, 8 rounds of message passing:

* ``mlp-max x8``: a custom ``MessagePassing`` layer (message ``relu(Linear([x_j, e]))``,
  max aggregation, update ``Linear([aggr, x])``), 8 layers with their own weights and a
  relu between them: every round has a ``Linear`` in the message and in the update;
* ``mlp-max tied x8``: the same layer applied 8 times (one module, 8 rounds);
* ``GINEConv x8``: PyG's ``GINEConv`` with a two-layer MLP, 8 layers.

Peer: the bare PyG model (``model(x, edge_index, edge_attr)``). hookgnn: the wrapped model
called the same way, no hook attached (``from_pyg(model, example=...)``, so hook points
and links are found before timing), and, as extra rows, ``run_with_cache`` of every
hook point, a forward + backward, and each model on a tiny graph (N = 64, E = 256),
where the wrapper's fixed cost per call (registering and removing its hooks) shows. Runs alternate peer / hookgnn; the table shows the
median of ``--runs`` runs in ms and the ratio hookgnn / peer (target for the plain
forward: <= 1.10).

    python benchmarks/bench_pyg.py                    # N = 10k, E = 100k, 7 runs
    python benchmarks/bench_pyg.py --quick            # N = 2k, E = 20k, 3 runs
    python benchmarks/bench_pyg.py --threads 1 --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

TARGET = 1.10


def _models(d: int, rounds: int) -> dict[str, Callable[[], nn.Module]]:
    from torch_geometric.nn import GINEConv, MessagePassing

    class MLPMax(MessagePassing):
        def __init__(self) -> None:
            super().__init__(aggr="max")
            self.msg, self.upd = nn.Linear(2 * d, d), nn.Linear(2 * d, d)

        def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
            return self.propagate(edge_index, x=x, edge_attr=edge_attr)

        def message(self, x_j, edge_attr):  # noqa: ANN001, ANN201
            return F.relu(self.msg(torch.cat([x_j, edge_attr], -1)))

        def update(self, aggr_out, x):  # noqa: ANN001, ANN201
            return self.upd(torch.cat([aggr_out, x], -1))

    class Stack(nn.Module):
        def __init__(self, layers: list[nn.Module]) -> None:
            super().__init__()
            self.convs = nn.ModuleList(layers)

        def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
            for i, conv in enumerate(self.convs):
                x = conv(x, edge_index, edge_attr)
                if i < len(self.convs) - 1:
                    x = F.relu(x)
            return x

    class Tied(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = MLPMax()

        def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
            for _ in range(rounds):
                x = F.relu(self.conv(x, edge_index, edge_attr))
            return x

    def gine() -> nn.Module:
        return GINEConv(nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d)))

    return {
        f"mlp-max x{rounds}": lambda: Stack([MLPMax() for _ in range(rounds)]),
        f"mlp-max tied x{rounds}": Tied,
        f"GINEConv x{rounds}": lambda: Stack([gine() for _ in range(rounds)]),
    }


def _median_ms(fns: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():  # warm-up
        fn()
    for _ in range(runs):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[k].append(1e3 * (time.perf_counter() - start))
    return {k: statistics.median(v) for k, v in times.items()}


def run(n: int, e: int, d: int, rounds: int, runs: int, tiny: bool = False) -> list[dict[str, object]]:
    from hookgnn import from_pyg

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=gen)
    edge_index = torch.randint(0, n, (2, e), generator=gen)
    edge_attr = torch.randn(e, d, generator=gen)
    rows = []
    for name, make in _models(d, rounds).items():
        if tiny:
            name = f"{name} on N={n}, E={e} (fixed cost)"
        torch.manual_seed(0)
        model = make().eval()
        hooked = from_pyg(model, example=(x, edge_index, edge_attr))

        def fwd_bwd(m: nn.Module) -> Callable[[], object]:
            return lambda: m(x, edge_index, edge_attr).square().mean().backward()

        with torch.no_grad():
            assert torch.equal(hooked(x, edge_index, edge_attr), model(x, edge_index, edge_attr))
            ms = _median_ms({"peer": lambda: model(x, edge_index, edge_attr),
                             "hooked": lambda: hooked(x, edge_index, edge_attr),
                             "cache": lambda: hooked.run_with_cache(x, edge_index, edge_attr)}, runs)
        if tiny:
            rows.append({"workload": f"{name}, forward", "peer": "bare PyG model", "peer_ms": ms["peer"],
                         "hookgnn_ms": ms["hooked"], "ratio": ms["hooked"] / ms["peer"], "target": None})
            continue
        ms_bwd = _median_ms({"peer": fwd_bwd(model), "hooked": fwd_bwd(hooked)}, runs)
        hooks = len(hooked.hook_dict)
        rows.append({"workload": f"{name}, forward", "peer": "bare PyG model", "peer_ms": ms["peer"],
                     "hookgnn_ms": ms["hooked"], "ratio": ms["hooked"] / ms["peer"], "target": TARGET})
        rows.append({"workload": f"{name}, run_with_cache ({hooks} hook points)", "peer": "bare PyG forward",
                     "peer_ms": ms["peer"], "hookgnn_ms": ms["cache"], "ratio": ms["cache"] / ms["peer"], "target": None})
        rows.append({"workload": f"{name}, forward + backward", "peer": "bare PyG model", "peer_ms": ms_bwd["peer"],
                     "hookgnn_ms": ms_bwd["hooked"], "ratio": ms_bwd["hooked"] / ms_bwd["peer"], "target": None})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--edges", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="N = 2k, E = 20k, 3 runs")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    if args.json is not None and not args.json.parent.exists():
        parser.error(f"--json: directory {args.json.parent} does not exist")
    if args.quick:
        args.nodes, args.edges, args.runs = 2_000, 20_000, 3
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    rows = run(args.nodes, args.edges, args.dim, args.rounds, args.runs)
    rows += run(64, 256, args.dim, args.rounds, 5 * args.runs, tiny=True)
    print(f"N = {args.nodes}, E = {args.edges}, d = {args.dim}, {args.rounds} rounds, median of {args.runs} runs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"| {'workload':66} | {'peer':16} | {'peer ms':>8} | {'hookgnn ms':>10} | {'ratio':>6} |")
    print(f"|{'-' * 68}|{'-' * 18}|{'-' * 10}|{'-' * 12}|{'-' * 8}|")
    for r in rows:
        flag = "" if r["target"] is None else (" ok" if r["ratio"] <= r["target"] else " MISSED")  # type: ignore[operator]
        print(f"| {r['workload']:66} | {r['peer']:16} | {r['peer_ms']:8.2f} | {r['hookgnn_ms']:10.2f} | "
              f"{r['ratio']:6.3f} |{flag}")
    if args.json is not None:
        args.json.write_text(json.dumps({"nodes": args.nodes, "edges": args.edges, "dim": args.dim,
                                         "rounds": args.rounds, "runs": args.runs, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
