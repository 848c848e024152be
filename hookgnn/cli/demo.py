"""The main job: inspect a small Bellman-Ford reasoner, patch it, find and draw its circuit.

By default it analyses the **reference checkpoint** shipped with hookgnn
(``hookgnn/data/demo_reference.pt``, loaded with ``torch.load(..., weights_only=True)``), so
that its printed output is the same on every machine: a model trained here would depend on
this CPU's torch code path and thread count (bitwise deterministic on one setup only), while
the analyses of one given checkpoint agree across code paths. ``train=True``
(``hookgnn demo --train``) trains the model again with the settings of :func:`demo_config`
(``scripts/make_demo_reference.py`` writes the reference file that way), and the demo
says which model it used.

Standard output carries only what holds on every machine (it is the block the README shows,
checked under two ``ATEN_CPU_CAPABILITY`` values by ``make demo-check``): numbers are printed
to 2 or 3 decimals, which absorbs last-bit differences between code paths. Standard error
carries what varies with the machine: torch's version, the CPU code path
(``torch.backends.cpu.get_cpu_capability()``), the thread count, the scatter backend and every
timing.

Each step prints what it found; figures go to ``out_dir`` (``sweep.png``: exact
activation patching over (round x node); ``circuit.png``: the message-level circuit
found by exact single-message patching, drawn over the input graph; ``faithfulness.png``: faithfulness against
circuit size, for circuits ranked by exact patching, attribution patching, EAP-IG, AtP*, and AtP* with its top
messages verified by exact patching). Circuit sizes are tried one by one from 1 to 20 messages, then on a
coarser grid (:data:`CIRCUIT_SIZES`), so a size up to 20 is the smallest one with faithfulness >= 0.9. Its
graphs are tiny: it runs on one torch thread unless ``threads`` says otherwise (:mod:`hookgnn.ops.threads`),
and restores torch's setting after.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from hookgnn.attribution import atp_star, attribute, eap, message_edge_scores
from hookgnn.circuits import Circuit, evaluate, verify
from hookgnn.graph import Graph
from hookgnn.metrics import PointerLogProb, faithfulness
from hookgnn.models import HookedGNN
from hookgnn.ops import compiled
from hookgnn.ops.backend import get_backend
from hookgnn.ops.threads import auto_threads
from hookgnn.patching import HookScores, message_edges, messages, nodes, patch
from hookgnn.patching.components import MessageEdge
from hookgnn.tasks import get_task
from hookgnn.tasks.corruptions import sample_pairs
from hookgnn.training import TrainConfig, evaluate_model, load_checkpoint, train

ROUNDS = 10
#: Messages re-scored by exact patching after ranking by AtP* (filter, then verify).
VERIFY_TOP = 16
#: Circuit sizes tried for faithfulness >= 0.9: every size from 1 to 20, then a grid (and the whole universe).
CIRCUIT_SIZES = (*range(1, 21), 24, 32, 40, 48, 64, 80, 96, 128, 160, 192, 256, 320)
#: The reference checkpoint, shipped as package data (``scripts/make_demo_reference.py`` writes it).
REFERENCE = Path(__file__).resolve().parents[1] / "data" / "demo_reference.pt"


def demo_config(seed: int = 0, train_steps: int = 400) -> TrainConfig:
    """The demo model's training settings: an MPNN (max aggregation, ``d_hidden=32``, ``max_steps=10``) on
    Bellman-Ford, Erdos-Renyi graphs with 8, 10 or 12 nodes and ``p = 0.3``, batches of 16, Adam at 3e-3.
    The reference checkpoint is ``seed=0, train_steps=400``.

    >>> demo_config().processor, demo_config().steps, demo_config(seed=3).seed
    ('mpnn', 400, 3)
    """
    return TrainConfig(task="bellman_ford", processor="mpnn", d_hidden=32, max_steps=ROUNDS, sizes=(8, 10, 12),
                       sampler_kwargs={"p": 0.3}, batch_size=16, steps=train_steps, rounds=ROUNDS, lr=3e-3,
                       seed=seed, progress=None)  # a progress bar when stderr is a terminal


def load_reference(path: str | Path = REFERENCE) -> tuple[HookedGNN, TrainConfig]:
    """The reference model (eval mode) and the settings it was trained with, read with ``weights_only=True``.

    >>> model, config = load_reference()
    >>> model.d_hidden, config.seed, config.steps
    (32, 0, 400)
    """
    ckpt = load_checkpoint(path)
    if ckpt.task != "bellman_ford" or ckpt.train_config is None or ckpt.model.max_steps != ROUNDS:
        raise ValueError(f"{path} is not a demo reference checkpoint (Bellman-Ford, {ROUNDS} rounds, with its "
                         f"training settings); write one with scripts/make_demo_reference.py")
    return ckpt.model.eval(), ckpt.train_config


def _ranks(values: Tensor, digits: int) -> Tensor:
    """Average ranks (ties share the mean of their positions) of ``values`` rounded to ``digits`` decimals of
    their largest magnitude."""
    v = values.flatten().double()
    scale = float(v.abs().max())
    if scale > 0:
        v = torch.round(v / scale * 10**digits)
    order = v.argsort(stable=True)
    pos = torch.empty_like(v)
    pos[order] = torch.arange(len(v), dtype=v.dtype)
    uniq, inverse = torch.unique(v, return_inverse=True)
    total = torch.zeros(len(uniq), dtype=v.dtype).index_add_(0, inverse, pos)
    count = torch.zeros(len(uniq), dtype=v.dtype).index_add_(0, inverse, torch.ones_like(pos))
    return (total / count)[inverse]


def rank_correlation(a: Tensor, b: Tensor, digits: int = 3) -> float:
    """Spearman's rho, without scipy: the Pearson correlation of average ranks (tied values share their mean
    rank), after rounding each tensor to ``digits`` decimals of its largest magnitude. The rounding makes
    the ranks blind to last-bit differences between CPU code paths and thread counts, which would
    otherwise reorder the many near-zero scores of messages that do not matter.

    >>> round(rank_correlation(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 30.0, 20.0])), 3)
    0.5
    >>> round(rank_correlation(torch.tensor([0.0, 0.0, 1.0]), torch.tensor([1e-9, -1e-9, 5.0])), 6)
    1.0
    """
    ra, rb = _ranks(a, digits), _ranks(b, digits)
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


def _note(text: str) -> None:
    """A line that varies with the machine (timings, versions): to stderr, out of the compared output."""
    print(text, file=sys.stderr, flush=True)


def build_kernel() -> None:
    """Build the compiled scatter kernel now if the demo will use it and no build is cached,
    saying (on stderr) that the one-time build runs and, after, how long it took."""
    if get_backend() not in ("auto", "compiled") or compiled.is_built():
        return
    _note("0. building the compiled scatter max/min kernel: once per machine and hookgnn version, a minute or two ...")
    start = time.perf_counter()
    done = "built" if compiled.load() is not None else "could not build it (the demo uses plain PyTorch)"
    _note(f"   {done} in {time.perf_counter() - start:.0f} s\n")


def machine_header(threads: int) -> str:
    """What the demo ran on: torch version, CPU code path, threads, scatter backend (printed to stderr).

    >>> machine_header(1).startswith("hookgnn demo on torch ")
    True
    """
    from hookgnn.ops.backend import resolve_backend

    return (f"hookgnn demo on torch {torch.__version__}, CPU code path {torch.backends.cpu.get_cpu_capability()} "
            f"(ATEN_CPU_CAPABILITY), {threads} torch thread{'s' * (threads != 1)}, scatter max/min backend "
            f"{resolve_backend(torch.zeros(1))}")


def run_demo(
    out_dir: str | Path = "out/demo",
    seed: int = 0,
    train_steps: int = 400,
    threads: int | None = None,
    retrain: bool = False,
) -> dict[str, float]:
    """Run every step and return the headline numbers (also printed).

    ``retrain``: train the model here (:func:`demo_config` with ``seed`` and ``train_steps``) instead of
    analysing the reference checkpoint (which ignores ``seed`` and ``train_steps``).
    ``threads``: torch CPU threads (default: chosen by workload, one for these tiny graphs;
    :func:`hookgnn.ops.threads.auto_threads`); torch's setting is restored after.
    """
    config = demo_config(seed, train_steps)
    n = max(config.sizes)
    build_kernel()
    with auto_threads(config.batch_size * n * (n + 1) * config.d_hidden, threads) as count:  # N + E <= n + n^2
        _note(machine_header(count))
        return _run(Path(out_dir), config, retrain)


def _model(config: TrainConfig, retrain: bool) -> tuple[HookedGNN, TrainConfig]:
    """The model to analyse: trained here (``retrain``) or the reference checkpoint."""
    if retrain:
        print(f"1. train (--train): MPNN (max aggregation) on Bellman-Ford, Erdos-Renyi graphs with 8-12 nodes, "
              f"{config.steps} steps, seed {config.seed}\n   (not the reference checkpoint: the numbers below depend "
              "on this machine's CPU code path and threads)", flush=True)
        start = time.perf_counter()
        model, history = train(config)
        _note(f"   trained in {time.perf_counter() - start:.1f} s")
        print(f"   loss {history[0]['loss']:.3f} -> {history[-1]['loss']:.3f}")
        return model.eval(), config
    model, config = load_reference()
    print(f"1. model: hookgnn/data/{REFERENCE.name}, the reference shipped with hookgnn (MPNN, Bellman-Ford, "
          f"{config.steps} steps)", flush=True)
    return model, config


def _run(out_dir: Path, config: TrainConfig, retrain: bool) -> dict[str, float]:
    out_dir.mkdir(parents=True, exist_ok=True)
    task = get_task("bellman_ford")
    model, config = _model(config, retrain)
    seed = config.seed
    results: dict[str, float] = {}
    for n in (12, 20):
        test = task.sample(32, "erdos_renyi", seed=seed + 1000 + n, n=n, p=0.3)
        results[f"pointer_accuracy_n{n}"] = evaluate_model(model, task, test, rounds=ROUNDS)["pi.accuracy"]
    print(f"   predecessor accuracy: {results['pointer_accuracy_n12']:.3f} at n=12, "
          f"{results['pointer_accuracy_n20']:.3f} at n=20 (out of distribution)")

    print("2. inspect: one graph and a corrupted twin (the source moved elsewhere)")
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

    print("3. patch: clean node states into the corrupted run, one (round, node) at a time")
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
    print(f"   exact sweep of {effect.numel()} patches; Spearman(attribution patching, exact) = {rho:.2f}")
    _note(f"   timings: exact sweep {exact_s:.3f} s, attribution patching {attr_s:.3f} s")
    print(f"   largest restoring patch: round {best[0]}, node {best[1]} "
          f"(log-prob {sweep.baseline:.2f} -> {sweep.baseline + float(effect.max()):.2f})")

    print("4. circuit: which single messages carry the query's answer (the rest resampled from the corrupted run)")
    universe = message_edges(clean.edge_index, range(ROUNDS), model)
    scores, seconds = _score_messages(model, clean, corrupted, metric, universe)
    exact = scores["exact patching"]
    rankings = {name: sorted(universe, key=lambda m, s=s: -abs(s[m])) for name, s in scores.items()}
    verified = f"AtP*, top {VERIFY_TOP} verified"
    rankings[verified], seconds[verified] = _verified_ranking(model, clean, corrupted, metric, universe,
                                                              seconds["AtP*"])
    run = lambda c: evaluate(model, clean, corrupted, metric, c, universe, steps=ROUNDS)  # noqa: E731
    m_full, m_empty = run(Circuit.of(universe)), run(Circuit())
    sizes = [k for k in CIRCUIT_SIZES if k < len(universe)] + [len(universe)]
    curves, circuit = {}, []
    print(f"   {'ranking':<26} {'Spearman':>9}  messages for faithfulness 0.9")
    exact_values = torch.tensor([exact[m] for m in universe])
    for name, ranked in rankings.items():
        curves[name] = [float(faithfulness(run(Circuit.of(ranked[:k])), m_full, m_empty)) for k in sizes]
        size = next((k for k, f in zip(sizes, curves[name]) if f >= 0.9), sizes[-1])
        key = name.split(",")[0].split()[0].lower().replace("*", "_star") + ("_verified" if "verified" in name else "")
        rho = rank_correlation(exact_values, torch.tensor([scores[name][m] for m in universe])) if name in scores else None
        results.update({f"circuit_size_{key}": size, f"seconds_{key}": seconds[name]})
        if rho is not None:
            results[f"spearman_{key}"] = rho
        print(f"   {name:<26} {'-' if rho is None else f'{rho:.2f}':>9}  {size} of {len(universe)}")
        circuit = circuit or ranked[:size]
    _note("   timings: " + ", ".join(f"{name} {s:.3f} s ({s / seconds['exact patching']:.2f} x exact)"
                                      for name, s in seconds.items()))
    print(f"   the drawn circuit ({len(circuit)} messages): " + ", ".join(
        f"t{m.round}:{m.u}->{m.v}" for m in sorted(circuit, key=lambda m: (m.round, m.u))))

    _draw(out_dir, sweep, clean, circuit, exact, sizes, curves, query)
    print(f"figures: {out_dir}/sweep.png, {out_dir}/circuit.png, {out_dir}/faithfulness.png")
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
