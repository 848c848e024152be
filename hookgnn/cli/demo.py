"""The main job: train a small Bellman-Ford reasoner, inspect it, patch it, draw its circuit.

Each step prints what it found; figures go to ``out_dir`` (``sweep.png``: exact
activation patching over (round x node); ``circuit.png``: the message-level circuit
found by exact single-message patching, drawn over the input graph; ``faithfulness.png``: faithfulness against
circuit size, for circuits ranked by exact patching, attribution patching, EAP-IG, AtP*, and AtP* with its top
messages verified by exact patching). Runs in about a minute on 2 CPU cores, plus a minute or two the first
time, to build the compiled scatter kernel (it says so while it builds). Its graphs are tiny: it runs on one torch
thread unless ``threads`` says otherwise (:mod:`hookgnn.ops.threads`), and restores torch's setting after.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hookgnn.attribution import atp_star, attribute, eap, message_edge_scores
from hookgnn.circuits import Circuit, evaluate, verify
from hookgnn.graph import Graph
from hookgnn.metrics import PointerLogProb, faithfulness
from hookgnn.ops import compiled
from hookgnn.ops.backend import get_backend
from hookgnn.ops.threads import auto_threads
from hookgnn.patching import HookScores, message_edges, messages, nodes, patch
from hookgnn.patching.components import MessageEdge
from hookgnn.tasks import get_task
from hookgnn.tasks.corruptions import sample_pairs
from hookgnn.training import TrainConfig, evaluate_model, train

ROUNDS = 10
#: Messages re-scored by exact patching after ranking by AtP* (filter, then verify).
VERIFY_TOP = 16


def rank_correlation(a: Tensor, b: Tensor) -> float:
    """Spearman's rho (ties broken by position), without scipy."""
    ra, rb = (t.flatten().argsort().argsort().float() for t in (a, b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp(min=1e-12))


def _query_node(clean: Graph, corrupted: Graph) -> int:
    """The node farthest from the source whose predecessor differs in the corrupted graph
    (neither source itself)."""
    dst = clean.edge_index[1]
    sources = {int(clean["s"].argmax()), int(corrupted["s"].argmax())}
    changed = [v for v in range(clean.num_nodes) if v not in sources
               and not torch.equal(clean["pi"][dst == v], corrupted["pi"][dst == v])]
    return max(changed or range(clean.num_nodes), key=lambda v: float(clean["d"][v]))


def build_kernel() -> None:
    """Build the compiled scatter kernel now if the demo will use it and no build is cached,
    saying that the one-time build runs and, after, how long it took."""
    if get_backend() not in ("auto", "compiled") or compiled.is_built():
        return
    print("0. building the compiled scatter max/min kernel: once per machine and hookgnn version, "
          "a minute or two ...", flush=True)
    start = time.perf_counter()
    done = "built" if compiled.load() is not None else "could not build it (the demo uses plain PyTorch)"
    print(f"   {done} in {time.perf_counter() - start:.0f} s\n", flush=True)


def run_demo(
    out_dir: str | Path = "out/demo", seed: int = 0, train_steps: int = 400, threads: int | None = None
) -> dict[str, float]:
    """Run every step and return the headline numbers (also printed).

    ``threads``: torch CPU threads (default: chosen by workload, one for these tiny graphs;
    :func:`hookgnn.ops.threads.auto_threads`); torch's setting is restored after.
    """
    config = TrainConfig(task="bellman_ford", processor="mpnn", d_hidden=32, max_steps=ROUNDS, sizes=(8, 10, 12),
                         sampler_kwargs={"p": 0.3}, batch_size=16, steps=train_steps, rounds=ROUNDS, lr=3e-3,
                         seed=seed, progress=None)  # a progress bar when stderr is a terminal
    n = max(config.sizes)
    build_kernel()
    with auto_threads(config.batch_size * n * (n + 1) * config.d_hidden, threads):  # N + E <= n + n^2 per graph
        return _run(Path(out_dir), config)


def _run(out_dir: Path, config: TrainConfig) -> dict[str, float]:
    out_dir.mkdir(parents=True, exist_ok=True)
    task = get_task("bellman_ford")
    seed, train_steps = config.seed, config.steps
    results: dict[str, float] = {}

    print("1. train: MPNN (max aggregation) on Bellman-Ford, Erdos-Renyi graphs with 8-12 nodes", flush=True)
    start = time.perf_counter()
    model, history = train(config)
    model.eval()
    print(f"   {train_steps} steps in {time.perf_counter() - start:.1f} s, loss {history[0]['loss']:.3f} -> "
          f"{history[-1]['loss']:.3f}")
    for n in (12, 20):
        test = task.sample(32, "erdos_renyi", seed=seed + 1000 + n, n=n, p=0.3)
        acc = evaluate_model(model, task, test, rounds=ROUNDS)["pi.accuracy"]
        results[f"pointer_accuracy_n{n}"] = acc
        print(f"   predecessor accuracy at n={n}{' (out of distribution)' if n > 12 else ''}: {acc:.3f}")

    print("\n2. inspect: one graph and a corrupted twin (the source moved elsewhere)")
    clean, corrupted = sample_pairs(task, 1, "resample_source", "erdos_renyi", seed=seed + 7, n=10, p=0.3)
    query = _query_node(clean, corrupted)
    _, cache = model.run_with_cache(clean, steps=ROUNDS)
    print(f"   {clean.num_nodes} nodes, {clean.num_edges} edges (self-loops included); source "
          f"{int(clean['s'].argmax())} -> {int(corrupted['s'].argmax())}; query node {query}, whose predecessor changes")
    print(f"   {len(cache)} cached activations, e.g. layers.0.hook_message {tuple(cache['message', 0].shape)}, "
          f"stack('update') {tuple(cache.stack('update').shape)}")
    select = torch.zeros(clean.num_nodes)
    select[query] = 1.0
    # log-probability of the query node's true (clean) predecessor, in whichever run is patched
    metric = PointerLogProb(target=clean["pi"], select=select)

    print(f"\n3. patch: clean node states into the corrupted run, one (round, node) at a time")
    states = nodes(model, "update", range(ROUNDS))
    hooks = list(states.hooks)
    start = time.perf_counter()
    sweep = patch(model, clean, corrupted, metric, states, steps=ROUNDS)
    exact_s = time.perf_counter() - start
    start = time.perf_counter()
    attr = attribute(model, clean, corrupted, metric, names_filter=hooks, steps=ROUNDS).rows(hooks)
    attr_s = time.perf_counter() - start
    effect = sweep.values  # metric after each patch minus sweep.baseline, as attr.values estimates it
    rho = rank_correlation(effect, attr.values)
    results.update(sweep_seconds=exact_s, attribution_seconds=attr_s, attribution_spearman=rho)
    best = divmod(int(effect.flatten().argmax()), effect.shape[1])
    print(f"   exact sweep of {effect.numel()} patches: {exact_s:.2f} s; attribution patching: {attr_s:.3f} s; "
          f"Spearman(attribution, exact) = {rho:.2f}")
    print(f"   largest restoring patch: round {best[0]}, node {best[1]} "
          f"(log-prob {sweep.baseline:.2f} -> {sweep.baseline + float(effect.max()):.2f})")

    print("\n4. circuit: which single messages carry the query's answer (the rest resampled from the corrupted run)")
    universe = message_edges(clean.edge_index, range(ROUNDS), model)
    scores, seconds = _score_messages(model, clean, corrupted, metric, universe)
    exact = scores["exact patching"]
    rankings = {name: sorted(universe, key=lambda m, s=s: -abs(s[m])) for name, s in scores.items()}
    verified = f"AtP*, top {VERIFY_TOP} verified"
    rankings[verified], seconds[verified] = _verified_ranking(model, clean, corrupted, metric, universe,
                                                              seconds["AtP*"])
    run = lambda c: evaluate(model, clean, corrupted, metric, c, universe, steps=ROUNDS)  # noqa: E731
    m_full, m_empty = run(Circuit.of(universe)), run(Circuit())
    sizes = [k for k in (3, 5, 8, 10, 20, 40, 80) if k < len(universe)] + [len(universe)]
    curves, circuit = {}, []
    print(f"   {'ranking':<26} {'seconds':>8} {'/ exact':>8} {'Spearman':>9}  messages for faithfulness 0.9")
    exact_values = torch.tensor([exact[m] for m in universe])
    for name, ranked in rankings.items():
        curves[name] = [float(faithfulness(run(Circuit.of(ranked[:k])), m_full, m_empty)) for k in sizes]
        size = next((k for k, f in zip(sizes, curves[name]) if f >= 0.9), sizes[-1])
        key = name.split(",")[0].split()[0].lower().replace("*", "_star") + ("_verified" if "verified" in name else "")
        rho = rank_correlation(exact_values, torch.tensor([scores[name][m] for m in universe])) if name in scores else None
        results.update({f"circuit_size_{key}": size, f"seconds_{key}": seconds[name]})
        if rho is not None:
            results[f"spearman_{key}"] = rho
        print(f"   {name:<26} {seconds[name]:>8.3f} {seconds[name] / seconds['exact patching']:>8.3f} "
              f"{'-' if rho is None else f'{rho:.2f}':>9}  {size} of {len(universe)}")
        circuit = circuit or ranked[:size]
    print(f"   the drawn circuit ({len(circuit)} messages): " + ", ".join(
        f"t{m.round}:{m.u}->{m.v}" for m in sorted(circuit, key=lambda m: (m.round, m.u))))

    _draw(out_dir, sweep, clean, circuit, exact, sizes, curves, query)
    print(f"\nfigures: {out_dir}/sweep.png, {out_dir}/circuit.png, {out_dir}/faithfulness.png")
    return results


def _score_messages(
    model: Any, clean: Graph, corrupted: Graph, metric: Any, universe: list[MessageEdge]
) -> tuple[dict[str, dict[MessageEdge, float]], dict[str, float]]:
    """Every single message scored (noising: corrupted messages into the clean run) by exact
    patching and by three estimators, with the seconds each took."""
    hooks = [model.round_hook("hook_src", t) for t in range(ROUNDS)]
    methods = {
        "exact patching": lambda: patch(model, clean, corrupted, metric, messages(model), direction="noising",
                                        steps=ROUNDS),
        "attribution (EAP)": lambda: attribute(model, clean, corrupted, metric, names_filter=hooks,
                                               direction="noising", steps=ROUNDS).rows(hooks),
        "EAP-IG": lambda: message_edge_scores(eap(model, clean, corrupted, metric, ig_steps=8, direction="noising",
                                                  level="message", steps=ROUNDS)),
        "AtP*": lambda: atp_star(model, clean, corrupted, metric, direction="noising", steps=ROUNDS),
    }
    scores, seconds = {}, {}
    for name, method in methods.items():
        start = time.perf_counter()
        table = method()
        seconds[name] = time.perf_counter() - start
        scores[name] = {m: float(table[m.carrier.hook][m.edge]) for m in universe}
    return scores, seconds


def _verified_ranking(
    model: Any, clean: Graph, corrupted: Graph, metric: Any, universe: list[MessageEdge], atp_seconds: float
) -> tuple[list[MessageEdge], float]:
    """AtP*, then its top messages re-scored by exact patching: the filter-then-verify ranking."""
    start = time.perf_counter()
    estimate = atp_star(model, clean, corrupted, metric, direction="noising", steps=ROUNDS)
    verified = verify(model, clean, corrupted, metric, estimate, k=VERIFY_TOP, steps=ROUNDS)
    by_carrier = {m.carrier: m for m in universe}
    return [by_carrier[c] for c in verified.ranked], time.perf_counter() - start


def _draw(
    out_dir: Path,
    sweep: HookScores,
    clean: Graph,
    circuit: list[MessageEdge],
    messages: dict[MessageEdge, float],
    sizes: list[int],
    curves: dict[str, list[float]],
    query: int,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from hookgnn.viz import plot_message_circuit, plot_scores

    plot_scores(sweep, title="change in query log-prob after patching layers.t.hook_update").savefig(
        out_dir / "sweep.png", dpi=120, bbox_inches="tight")
    sources = clean["s"].nonzero().flatten().tolist()
    plot_message_circuit(clean, circuit, messages, query=query, sources=sources).savefig(
        out_dir / "circuit.png", dpi=120, bbox_inches="tight")
    fig, ax = plt.subplots(figsize=(4, 3))
    for name, curve in curves.items():
        ax.plot(sizes, curve, marker="o", label=name)
    ax.legend()
    low = min(-0.1, *(min(c) - 0.05 for c in curves.values()))
    ax.set(xscale="log", xlabel="messages kept", ylabel="normalized faithfulness", ylim=(low, 1.1))
    fig.tight_layout()
    fig.savefig(out_dir / "faithfulness.png", dpi=120)
    plt.close("all")
