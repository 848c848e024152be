"""Benchmark: EAP-IG at weight level over a dataset, against the textbook formula run graph by graph.

The published Bellman-Ford setting (MINAR, arXiv 2602.21442): a PyTorch Geometric network of
two min-aggregation ``MessagePassing`` layers (widths 1 -> 8 -> 1, message and update MLPs
64 wide, a relu between the layers), wrapped with :func:`hookgnn.from_pyg`; ``--graphs``
clean/corrupted pairs of weighted paths of ``--min-nodes`` to ``--max-nodes`` nodes
(``resample_weights``), metric: the L1 distance error of each graph, ``--ig-steps`` steps.

* peer (``textbook``): plain PyTorch, one graph at a time, one forward + backward per IG step:
  forward hooks on every ``nn.Linear`` record its input ``u`` and output ``z``, and
  :math:`S_{ji} = W_{ji} \\sum_r \\Delta u_{r,i}\\, \\bar g_{r,j}` (``bar g``: d metric / d z
  averaged over the steps), averaged over the graphs: the formula as a user writes it;
* second peer, the floor (``batched``): the same formula in plain PyTorch without hooks, batched
  as hookgnn batches it (a chunk of graphs' 20 interpolated copies in one forward + backward,
  parameters frozen): what the model's own arithmetic costs, so the ratio to it is hookgnn's
  overhead and the textbook / batched ratio the most any batching tool can reach;
* hookgnn: one ``eap(..., level="weight", link_filter=linear)`` call on the whole batch
  (graphs streamed in chunks, all steps of a chunk in one forward + backward).

The script checks that the three give the same scores, then prints wall and CPU time per
method (median of ``--runs``, interleaved) and the ratio. ``--memory`` also runs hookgnn alone
in fresh subprocesses at several dataset sizes and prints each one's peak resident memory
(``ru_maxrss``: the whole process, torch and PyG included).

    python benchmarks/bench_eap.py --quick
    python benchmarks/bench_eap.py --memory 250,1000,4000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hookgnn import Graph, from_pyg
from hookgnn.attribution import eap
from hookgnn.metrics.per_graph import from_loss
from hookgnn.patching.results import EdgeScores
from hookgnn.tasks import get_task
from hookgnn.tasks.corruptions import sample_pairs
from hookgnn.tasks.samplers import weighted_path


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


def dataset(graphs: int, lo: int, hi: int, seed: int = 1) -> tuple[Graph, Graph]:
    """``graphs`` clean/corrupted weighted paths of ``lo`` to ``hi`` nodes, as two batches."""
    def path(seed: Any = None) -> Any:
        rng = np.random.default_rng(seed)
        return weighted_path(int(rng.integers(lo, hi + 1)), seed=rng)

    pair = sample_pairs(get_task("bellman_ford"), graphs, "resample_weights", path, seed=seed)
    # the published network reads the source mask only; hookgnn's tasks also give ``pos`` (the last column)
    clean, corrupted = (g.replace(x=g.x[:, :1]) for g in pair)
    return clean, corrupted


def textbook(net: nn.Module, clean: Graph, corrupted: Graph, steps: int) -> dict[str, torch.Tensor]:
    """The peer: EAP-IG weight scores by hand, graph by graph and step by step, averaged over graphs."""
    linears = {n: m for n, m in net.named_modules() if isinstance(m, nn.Linear)}
    ins: dict[str, torch.Tensor] = {}
    outs: dict[str, torch.Tensor] = {}

    def record(name: str) -> Any:
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            ins[name], outs[name] = inputs[0], output
        return hook

    handles = [m.register_forward_hook(record(n)) for n, m in linears.items()]
    total = {n: torch.zeros_like(m.weight) for n, m in linears.items()}
    pairs = list(zip(clean.split(), corrupted.split()))
    try:
        for c, b in pairs:  # denoising: base = corrupted, source = clean; targets: the clean graph's
            ei, target = b.edge_index, c["d"]
            with torch.no_grad():
                net(b.x, ei, b.edge_attr)
                u_base = dict(ins)
                net(c.x, ei, c.edge_attr)
                u_src = dict(ins)
            gbar = {n: torch.zeros_like(u_base[n][:, :1].expand(-1, m.out_features)) for n, m in linears.items()}
            for k in range(steps):
                a = (k + 0.5) / steps
                out = net(b.x + a * (c.x - b.x), ei, b.edge_attr + a * (c.edge_attr - b.edge_attr))
                grads = torch.autograd.grad((out.squeeze(-1) - target).abs().mean(), [outs[n] for n in linears])
                for n, g in zip(linears, grads):
                    gbar[n] += g / steps
            for n, m in linears.items():
                total[n] += m.weight.detach() * (gbar[n].T @ (u_src[n] - u_base[n]))
    finally:
        for h in handles:
            h.remove()
    return {n: t / len(pairs) for n, t in total.items()}


def batched(net: nn.Module, clean: Graph, corrupted: Graph, steps: int, rows: int = 1 << 15) -> dict[str, torch.Tensor]:
    """The floor: the same scores in plain PyTorch, without hooks, batched as hookgnn batches them:
    consecutive graphs whose ``steps`` interpolated copies hold about ``rows`` nodes + edges run as one
    disjoint union (one forward + backward), base and source as another (no grad), parameters frozen;
    the gradients at every ``nn.Linear`` output summed over the copies, then ``du.T @ gbar``."""
    linears = {n: m for n, m in net.named_modules() if isinstance(m, nn.Linear)}
    ins: dict[str, torch.Tensor] = {}
    outs: dict[str, torch.Tensor] = {}

    def record(name: str) -> Any:
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            if torch.is_grad_enabled() and not output.requires_grad:
                output = output.detach().requires_grad_()  # the first layer: a leaf, nothing before it needs grad
            ins[name], outs[name] = inputs[0], output
            return output
        return hook

    def copies(g: Graph, xs: list[torch.Tensor], es: list[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        k = len(xs)
        shift = (torch.arange(k) * g.num_nodes).view(1, k, 1)
        return torch.cat(xs), (g.edge_index.unsqueeze(1) + shift).reshape(2, -1), torch.cat(es)

    def l1_sum(out: torch.Tensor, target: torch.Tensor, batch: torch.Tensor, graphs: int) -> torch.Tensor:
        err = (out.squeeze(-1) - target).abs()
        per_graph = torch.zeros(graphs).index_add_(0, batch, err) / torch.bincount(batch, minlength=graphs)
        return per_graph.sum()

    sizes = (clean.ptr.diff() + torch.bincount(clean.edge_batch, minlength=clean.num_graphs)).tolist()
    parts = list(zip(clean.split(), corrupted.split()))
    total = {n: torch.zeros_like(m.weight) for n, m in linears.items()}
    handles = [m.register_forward_hook(record(n)) for n, m in linears.items()]
    frozen = [p for p in net.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        start = 0
        while start < len(parts):
            stop, held = start + 1, sizes[start]
            while stop < len(parts) and (held + sizes[stop]) * steps <= rows:
                held += sizes[stop]
                stop += 1
            c, b = Graph.collate([p[0] for p in parts[start:stop]]), Graph.collate([p[1] for p in parts[start:stop]])
            with torch.no_grad():
                net(*copies(b, [b.x, c.x], [b.edge_attr, c.edge_attr]))
                du = {n: u.reshape(2, -1, u.shape[-1]) for n, u in ins.items()}
                du = {n: u[1] - u[0] for n, u in du.items()}
            alphas = [(k + 0.5) / steps for k in range(steps)]
            x, ei, e = copies(b, [b.x + a * (c.x - b.x) for a in alphas],
                              [b.edge_attr + a * (c.edge_attr - b.edge_attr) for a in alphas])
            batch = (c.batch + (torch.arange(steps) * c.num_graphs).view(-1, 1)).flatten()
            out = net(x, ei, e)
            grads = torch.autograd.grad(l1_sum(out, c["d"].repeat(steps), batch, steps * c.num_graphs),
                                        [outs[n] for n in linears])
            for n, g in zip(linears, grads):
                gbar = g.reshape(steps, -1, g.shape[-1]).sum(0)
                total[n] += linears[n].weight * (gbar.T @ du[n])
            start = stop
    finally:
        for h in handles:
            h.remove()
        for p in frozen:
            p.requires_grad_(True)
    return {n: t / (len(parts) * steps) for n, t in total.items()}


def as_matrices(net: nn.Module, scores: EdgeScores) -> dict[str, torch.Tensor]:
    """hookgnn's weight-edge scores laid out as the peer's ``[out, in]`` matrices per ``nn.Linear``:
    msg_mlp.0 reads ``[x_j, e_ij]``, upd_mlp.0 ``[aggr, x]`` (the source hook gives the block)."""
    out = {n: torch.zeros_like(m.weight) for n, m in net.named_modules() if isinstance(m, nn.Linear)}
    for edge, s in zip(scores.edges, scores.scores.tolist()):
        linear = edge.dst.hook.removesuffix(".hook_out")
        conv = net.get_submodule(linear.rsplit(".", 2)[0])
        offset = {"hook_edge_attr": conv.msg_mlp[0].in_features - 1,
                  "hook_input": conv.msg_mlp[2].out_features}.get(edge.src.hook.rsplit(".", 1)[-1], 0)
        out[linear][edge.dst.feature, edge.src.feature + offset] = s
    return out


def run_hookgnn(model: Any, clean: Graph, corrupted: Graph, steps: int) -> EdgeScores:
    metric = from_loss(F.l1_loss, target="d")
    return eap(model, clean, corrupted, metric, ig_steps=steps, level="weight", link_filter=lambda l: l.kind == "linear")


def timed(fn: Any) -> tuple[float, float, Any]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return (time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3, out


def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS", "VmHWM")):
                key, value = line.split(":")
                out[key] = int(value.split()[0]) * 1024
    return out


def memory_child(graphs: int, lo: int, hi: int, steps: int) -> None:
    """In a fresh process: build the data and model, run hookgnn once, print (MiB, as JSON) the
    peak resident memory of the whole process and the peak above the built inputs (Linux:
    ``/proc/self/clear_refs`` resets the high-water mark ``VmHWM`` after the setup)."""
    torch.set_num_threads(1)
    clean, corrupted = dataset(graphs, lo, hi)
    torch.manual_seed(0)
    model = from_pyg(published_network().eval(), example=clean)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    start = _status()["VmRSS"]
    run_hookgnn(model, clean, corrupted, steps)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"graphs": graphs, "nodes": clean.num_nodes, "edges": clean.num_edges, "after_setup_mib": start / 2**20,
                      "peak_rss_mib": peak, "peak_above_setup_mib": (_status()["VmHWM"] - start) / 2**20}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--graphs", type=int, default=250)
    p.add_argument("--min-nodes", type=int, default=5)
    p.add_argument("--max-nodes", type=int, default=60)
    p.add_argument("--ig-steps", type=int, default=20)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--memory", default="", help="comma-separated dataset sizes for the peak-memory rows")
    p.add_argument("--quick", action="store_true", help="40 graphs, one run")
    p.add_argument("--json", default=None)
    p.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_child is not None:
        memory_child(args.memory_child, args.min_nodes, args.max_nodes, args.ig_steps)
        return
    if args.quick:
        args.graphs, args.runs = 40, 1
    torch.set_num_threads(args.threads)
    clean, corrupted = dataset(args.graphs, args.min_nodes, args.max_nodes)
    torch.manual_seed(0)
    net = published_network().eval()
    model = from_pyg(net, example=clean)
    run_hookgnn(model, clean, corrupted, args.ig_steps)  # warm-up (and PyG's propagate template)
    peers = {"textbook, per graph": lambda: textbook(net, clean, corrupted, args.ig_steps),
             "plain torch, batched": lambda: batched(net, clean, corrupted, args.ig_steps)}
    times: dict[str, list[tuple[float, float, Any]]] = {name: [] for name in [*peers, "hookgnn"]}
    for _ in range(args.runs):  # interleaved: all see the same machine load
        for name, fn in peers.items():
            times[name].append(timed(fn))
        times["hookgnn"].append(timed(lambda: run_hookgnn(model, clean, corrupted, args.ig_steps)))
    got = as_matrices(net, times["hookgnn"][-1][2])
    for name in peers:
        want = times[name][-1][2]
        for n in want:
            scale = float(want[n].abs().max())
            torch.testing.assert_close(got[n], want[n], rtol=1e-3, atol=1e-5 * scale)
    med = lambda ts, i: statistics.median(t[i] for t in ts)  # noqa: E731
    rows = []
    print(f"{'workload':<62} {'peer':<22} {'peer ms':>9} {'hookgnn ms':>10} {'ratio':>6} {'cpu ratio':>9}")
    for name in peers:
        row = dict(workload=f"EAP-IG weight edges, {args.graphs} graphs of {args.min_nodes}-{args.max_nodes} nodes, "
                            f"{args.ig_steps} steps", edges=sum(int(t.numel()) for t in got.values()),
                   peer=name, peer_ms=med(times[name], 0), hookgnn_ms=med(times["hookgnn"], 0),
                   peer_cpu_ms=med(times[name], 1), hookgnn_cpu_ms=med(times["hookgnn"], 1), threads=args.threads,
                   runs=args.runs)
        row["ratio"] = row["peer_ms"] / row["hookgnn_ms"]
        row["cpu_ratio"] = row["peer_cpu_ms"] / row["hookgnn_cpu_ms"]
        rows.append(row)
        print(f"{row['workload']:<62} {row['peer']:<22} {row['peer_ms']:>9.0f} {row['hookgnn_ms']:>10.0f} "
              f"{row['ratio']:>6.1f} {row['cpu_ratio']:>9.1f}")
    memory = []
    for n in [int(s) for s in args.memory.split(",") if s]:
        out = subprocess.run([sys.executable, __file__, "--memory-child", str(n), "--min-nodes", str(args.min_nodes),
                              "--max-nodes", str(args.max_nodes), "--ig-steps", str(args.ig_steps)],
                             capture_output=True, text=True, check=True)
        memory.append(json.loads(out.stdout.strip().splitlines()[-1]))
        m = memory[-1]
        print(f"peak RSS, hookgnn, {n} graphs ({m['nodes']} nodes, {m['edges']} edges): {m['peak_rss_mib']:.0f} MiB "
              f"for the process; eap's own: {m['peak_above_setup_mib']:.0f} MiB above the built data and model "
              f"({m['after_setup_mib']:.0f} MiB)")
    load = os.getloadavg()
    print(f"median of {args.runs} interleaved runs, {args.threads} thread(s); load average {load[0]:.1f} (1 min) on "
          f"{os.cpu_count()} CPUs: the machine may be shared (CPU time is the steadier number there)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "rows": rows, "memory": memory}, f, indent=2)


if __name__ == "__main__":
    main()
