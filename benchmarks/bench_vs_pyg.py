"""hookgnn against the same model written with PyTorch Geometric layers.

Model: encode-process-decode MPNN with max aggregation (the CLRS baseline): linear
node and edge encoders, then ``--rounds`` rounds (own weights each) of

    m_uv = MLP_m([x_u, h_u, x_v, h_v, e_uv]),  a_v = max_u m_uv,  h'_v = relu(MLP_u([x_v, h_v, a_v]))

with d = 64 and one-hidden-layer MLPs. hookgnn: ``HookedGNN("mpnn", ...)``. Peer: the
same model as a PyG user writes it (``MessagePassing(aggr="max")`` whose ``message``
runs the MLP on ``[z_j, z_i, e]``, ``nn.Sequential`` MLPs), with hookgnn's weights copied
in. Graph: N = E / 10 nodes, E random edges. Before timing, outputs are asserted equal
at every size, and parameter gradients and the captured tensors of the caching rows at
E = min(1e5, smallest size).

Workloads (ratio = peer ms / hookgnn ms: above 1, hookgnn is faster):

* ``forward``: inference under ``torch.no_grad()``;
* ``forward+backward``: forward, then ``backward`` of a fixed random gradient of the
  final state;
* ``cache all``: ``run_with_cache`` with every hook point (no grad) against PyG with
  forward hooks capturing the same tensors (encodings; per round the messages' source
  rows, messages, aggregations, MLP neurons, update pre-activations, states:
  ``register_message_forward_hook``, ``register_aggregate_forward_hook`` and module
  forward hooks), registered and removed in each call as ``run_with_cache`` does;
* ``cache all grad on``: the same with autograd recording (no backward);
* ``hook overhead``: hookgnn with no hook attached against the same model with every
  HookPoint replaced by an ``nn.Identity`` (peer: that bare model; target ratio
  >= 1/1.05);
* extra peer rows ``PyG projected``: the PyG model with its message MLP's first layer
  applied on nodes before the gather, written by hand (what hookgnn does internally).

Timings: runs of peer and hookgnn alternate in one process per (size, workload);
medians of ``--runs``. Peak memory: a fresh subprocess per (size, workload, model) runs
it once; the high-water mark of resident memory (``VmHWM``, reset just before) minus
resident memory after building graph and models, in MB.

    python benchmarks/bench_vs_pyg.py                    # E = 1e5 and 1e6, 7 runs
    python benchmarks/bench_vs_pyg.py --quick            # E = 2e4, 3 runs
    python benchmarks/bench_vs_pyg.py --sizes 1e5 --runs 11 --threads 1 --json out.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

D, NODE_IN, EDGE_IN = 64, 8, 4
WORKLOADS = ["forward", "forward+backward", "cache all", "cache all grad on", "hook overhead"]
PEERS = {"forward": ["PyG", "PyG projected"], "forward+backward": ["PyG", "PyG projected"],
         "cache all": ["PyG + hooks"], "cache all grad on": ["PyG + hooks"], "hook overhead": ["no HookPoints"]}


# ----------------------------------------------------------------------------- models
def _pyg_classes():  # imported lazily: PyG generates each layer's propagate at class creation
    from torch_geometric.nn import MessagePassing

    class PygMPNNLayer(MessagePassing):
        def __init__(self, d: int) -> None:
            super().__init__(aggr="max")
            self.message_mlp = nn.Sequential(nn.Linear(5 * d, d), nn.ReLU(), nn.Linear(d, d))
            self.update_mlp = nn.Sequential(nn.Linear(3 * d, d), nn.ReLU(), nn.Linear(d, d))

        def forward(self, h: Tensor, edge_index: Tensor, e: Tensor, x: Tensor) -> Tensor:
            aggr = self.propagate(edge_index, z=torch.cat([x, h], -1), e=e)
            return torch.relu(self.update_mlp(torch.cat([x, h, aggr], -1)))

        def message(self, z_j: Tensor, z_i: Tensor, e: Tensor) -> Tensor:
            return self.message_mlp(torch.cat([z_j, z_i, e], -1))

    class PygProjectedLayer(PygMPNNLayer):
        """The first message layer split by columns and applied on nodes, by hand."""

        def forward(self, h: Tensor, edge_index: Tensor, e: Tensor, x: Tensor) -> Tensor:
            w, b = self.message_mlp[0].weight, self.message_mlp[0].bias
            z = torch.cat([x, h], -1)
            p_src, p_dst = F.linear(z, w[:, : 2 * D]), F.linear(z, w[:, 2 * D: 4 * D])
            aggr = self.propagate(edge_index, p=p_src, q=p_dst, e=F.linear(e, w[:, 4 * D:], b))
            return torch.relu(self.update_mlp(torch.cat([x, h, aggr], -1)))

        def message(self, p_j: Tensor, q_i: Tensor, e: Tensor) -> Tensor:  # type: ignore[override]
            return self.message_mlp[2](self.message_mlp[1](p_j + q_i + e))

    return PygMPNNLayer, PygProjectedLayer


class PygMPNN(nn.Module):
    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.node_encoder, self.edge_encoder = nn.Linear(NODE_IN, D), nn.Linear(EDGE_IN, D)
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        x, e = self.node_encoder(x), self.edge_encoder(edge_attr)
        h = x
        for layer in self.layers:
            h = layer(h, edge_index, e, x)
        return h


def _copy(dst: nn.Linear, src: nn.Linear) -> None:
    with torch.no_grad():
        dst.weight.copy_(src.weight)
        dst.bias.copy_(src.bias)


def build(num_edges: int, rounds: int) -> dict:
    """The graph, hookgnn's model, the PyG twins with copied weights, the bare model."""
    from hookgnn import Graph, HookedGNN

    torch.manual_seed(0)
    n = max(2, num_edges // 10)
    graph = Graph(x=torch.randn(n, NODE_IN), edge_index=torch.randint(0, n, (2, num_edges)),
                  edge_attr=torch.randn(num_edges, EDGE_IN))
    ours = HookedGNN("mpnn", D, node_in=NODE_IN, edge_in=EDGE_IN, max_steps=rounds, tie_weights=False)
    plain, projected = _pyg_classes()
    twins = {}
    for name, cls in (("PyG", plain), ("PyG projected", projected)):
        peer = PygMPNN([cls(D) for _ in range(rounds)])
        _copy(peer.node_encoder, ours.node_encoder.lin)
        _copy(peer.edge_encoder, ours.edge_encoder.lin)
        for mine, theirs in zip(ours.layers, peer.layers):
            for a, b in ((mine.message_mlp, theirs.message_mlp), (mine.update_mlp, theirs.update_mlp)):
                _copy(b[0], a.lin_in)
                _copy(b[2], a.lin_out)
        twins[name] = peer
    return {"graph": graph, "ours": ours, "peers": twins, "bare": bare_copy(ours),
            "grad": torch.randn(n, D, generator=torch.Generator().manual_seed(1))}


class _NoHookPoint(nn.Identity):
    has_hooks = False  # what HookedMessagePassing asks a hook point


def bare_copy(model: nn.Module) -> nn.Module:
    """``model`` with every HookPoint replaced by an ``nn.Identity``."""
    from hookgnn.hooks import HookPoint

    bare = copy.deepcopy(model)
    for name, module in list(bare.named_modules()):
        if isinstance(module, HookPoint):
            parent, _, leaf = name.rpartition(".")
            setattr(bare.get_submodule(parent) if parent else bare, leaf, _NoHookPoint())
    return bare


# -------------------------------------------------------------------------- workloads
def _pyg_capture(peer: nn.Module, store: dict[str, Tensor]) -> list:
    """Forward hooks on the PyG model capturing what hookgnn's hook points hold."""
    handles = []

    def keep(name: str, pick: Callable) -> Callable:
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            store[name] = pick(inputs, output).detach()
        return hook

    out = lambda i, o: o  # noqa: E731
    handles.append(peer.node_encoder.register_forward_hook(keep("node_embed", out)))
    handles.append(peer.edge_encoder.register_forward_hook(keep("edge_embed", out)))
    for t, layer in enumerate(peer.layers):
        handles.append(layer.register_message_forward_hook(keep(f"{t}.src", lambda i, o: i[0]["z_j"][:, D:])))
        handles.append(layer.register_message_forward_hook(keep(f"{t}.message", out)))
        handles.append(layer.register_aggregate_forward_hook(keep(f"{t}.aggregation", out)))
        for mlp in ("message_mlp", "update_mlp"):
            seq = getattr(layer, mlp)
            handles.append(seq[0].register_forward_hook(keep(f"{t}.{mlp}.pre", out)))
            handles.append(seq[1].register_forward_hook(keep(f"{t}.{mlp}.post", out)))
        handles.append(layer.update_mlp.register_forward_hook(keep(f"{t}.update_pre", out)))
        handles.append(layer.register_forward_hook(keep(f"{t}.update", out)))
    return handles


def _pyg_cached(peer: nn.Module, g) -> tuple[Tensor, dict[str, Tensor]]:  # noqa: ANN001
    store: dict[str, Tensor] = {}
    handles = _pyg_capture(peer, store)
    try:
        return peer(g.x, g.edge_index, g.edge_attr), store
    finally:
        for h in handles:
            h.remove()


def runner(built: dict, workload: str, who: str) -> Callable[[], object]:
    """A call that runs one workload on one model (``who``: hookgnn or a peer name)."""
    g, grad = built["graph"], built["grad"]
    model = built["ours"] if who == "hookgnn" else built["bare"] if who == "no HookPoints" else \
        built["peers"][who.replace(" + hooks", "")]
    ours = isinstance(model, type(built["ours"]))

    def forward() -> Tensor:
        return model(g).hidden if ours else model(g.x, g.edge_index, g.edge_attr)

    if workload in ("forward", "hook overhead"):
        return lambda: _no_grad(forward)
    if workload == "forward+backward":
        def both() -> None:
            model.zero_grad(set_to_none=True)
            forward().backward(grad)
        return both
    grad_on = workload.endswith("grad on")

    def cache() -> object:
        with torch.set_grad_enabled(grad_on):
            return model.run_with_cache(g) if ours else _pyg_cached(model, g)
    return cache


def _no_grad(fn: Callable[[], Tensor]) -> Tensor:
    with torch.no_grad():
        return fn()


def check(built: dict, deep: bool) -> None:
    """Assert that every peer computes hookgnn's outputs; ``deep``: also gradients and caches."""
    g, ours = built["graph"], built["ours"]
    with torch.no_grad():
        want = ours(g).hidden
        for name, peer in {**built["peers"], "no HookPoints": built["bare"]}.items():
            got = peer(g).hidden if name == "no HookPoints" else peer(g.x, g.edge_index, g.edge_attr)
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5, msg=lambda m, name=name: f"{name} forward: {m}")
    if not deep:
        return
    grads = []
    for model in (ours, built["peers"]["PyG"]):
        runner(built, "forward+backward", "hookgnn" if model is ours else "PyG")()
        grads.append([p.grad for p in model.layers[0].message_mlp.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=lambda m: f"PyG gradient: {m}")
    with torch.no_grad():
        _, cache = ours.run_with_cache(g)
        _, store = _pyg_cached(built["peers"]["PyG"], g)
    last = len(ours.layers) - 1
    for mine, theirs in (("hook_src", "src"), ("hook_message", "message"), ("hook_aggregation", "aggregation"),
                         ("message_mlp.hook_post", "message_mlp.post"), ("hook_update", "update")):
        torch.testing.assert_close(cache[f"layers.{last}.{mine}"], store[f"{last}.{theirs}"], rtol=1e-4, atol=1e-5)


def timed(built: dict, workload: str, runs: int, clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Median ms per model, the models' runs alternating."""
    who = ["hookgnn", *PEERS[workload]]
    calls = {w: runner(built, workload, w) for w in who}
    for call in calls.values():  # warm-up
        call()
    times: dict[str, list[float]] = {w: [] for w in who}
    for _ in range(runs):
        for w, call in calls.items():
            start = clock()
            out = call()
            times[w].append((clock() - start) * 1e3)
            del out
    return {w: statistics.median(v) for w, v in times.items()}


def peak_worker(num_edges: int, rounds: int, workload: str, who: str) -> float:
    """Peak resident memory increase (MB) of one run of one workload on one model."""
    built = build(num_edges, rounds)
    call = runner(built, workload, who)
    before = _resident_kb()
    _reset_peak()
    out = call()
    del out
    return (_peak_kb() - before) / 1024


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))
    except (OSError, StopIteration):
        return None


def _resident_kb() -> int:
    return _status_kb("VmRSS") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak() -> None:
    """Reset the high-water mark VmHWM (Linux >= 4.0). ``ru_maxrss`` cannot be used: a
    subprocess starts with its parent's peak (Linux keeps it across fork and exec)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def _peak_kb() -> int:
    return _status_kb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _peak(num_edges: int, rounds: int, workload: str, who: str) -> float | None:
    cmd = [sys.executable, __file__, "--threads", str(torch.get_num_threads()),
           "--peak-worker", str(num_edges), str(rounds), workload, who]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"  peak of {who} failed: {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="E = 2e4, 3 runs")
    parser.add_argument("--sizes", type=str, default=None, help="edge counts, e.g. 1e5,1e6 (N = E / 10)")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--runs", type=int, default=None, help="timed runs per model (median; default 7, quick 3)")
    parser.add_argument("--workloads", type=str, default=None, help=f"comma-separated subset of {WORKLOADS}")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="wall time, or this process's CPU time (steadier on a busy machine with --threads 1)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--json", type=str, default=None, help="write the results to this path")
    parser.add_argument("--peak-worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.peak_worker:
        e, r, workload, who = args.peak_worker
        print(peak_worker(int(e), int(r), workload, who))
        return
    workloads = WORKLOADS if args.workloads is None else [w.strip() for w in args.workloads.split(",")]
    unknown = sorted(set(workloads) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workloads {unknown}; choose from {WORKLOADS}")
    if args.json:
        with open(args.json, "a"):  # fail now, not after the runs
            pass
    sizes = [int(float(s)) for s in (args.sizes or ("2e4" if args.quick else "1e5,1e6")).split(",")]
    runs = args.runs or (3 if args.quick else 7)
    import torch_geometric

    print(f"torch {torch.__version__}, torch_geometric {torch_geometric.__version__}, {torch.get_num_threads()} threads, "
          f"load average {tuple(round(x, 1) for x in os.getloadavg())}, d={D}, {args.rounds} rounds, {runs} runs, "
          f"{args.clock} time")
    print(f"{'E':>9}  {'workload':<20}{'peer':<16}{'peer ms':>10}{'hookgnn ms':>12}{'ratio':>8}"
          f"{'peer MB':>10}{'hookgnn MB':>12}")
    results = []
    check(build(min(*sizes, 100_000), args.rounds), deep=True)  # gradients and caches, at most E = 1e5
    for num_edges in sizes:
        built = build(num_edges, args.rounds)
        check(built, deep=False)
        for workload in workloads:
            ms = timed(built, workload, runs, time.perf_counter if args.clock == "wall" else time.process_time)
            mb = {w: None if args.no_memory else _peak(num_edges, args.rounds, workload, w) for w in ms}
            for peer in PEERS[workload]:
                row = {"edges": num_edges, "nodes": num_edges // 10, "workload": workload, "peer": peer,
                       "peer_ms": ms[peer], "hookgnn_ms": ms["hookgnn"], "ratio": ms[peer] / ms["hookgnn"],
                       "peer_mb": mb[peer], "hookgnn_mb": mb["hookgnn"]}
                results.append(row)
                fmt = lambda v: "-" if v is None else f"{v:.0f}"  # noqa: E731
                print(f"{num_edges:>9}  {workload:<20}{peer:<16}{row['peer_ms']:>10.1f}{row['hookgnn_ms']:>12.1f}"
                      f"{row['ratio']:>7.2f}x{fmt(row['peer_mb']):>10}{fmt(row['hookgnn_mb']):>12}", flush=True)
        del built
    print("ratio = peer ms / hookgnn ms (above 1: hookgnn is faster); MB: peak RSS increase of one run")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "runs": runs, "clock": args.clock,
                       "rounds": args.rounds, "d": D, "results": results}, fh, indent=1)


if __name__ == "__main__":
    main()
