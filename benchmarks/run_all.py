"""Run every benchmark in one go and write one table: hookgnn against its peers.

    python benchmarks/run_all.py --json out/bench.json [--quick] [--write-readme] [--only NAME ...]

Each benchmark script runs in its own process with ``--json`` (and its quick setting with
``--quick``); its own JSON is read back by an adapter into uniform rows

    benchmark, workload, peer, peer value, hookgnn value, unit, ratio (and what it means), runs,

and the rows are written as JSON (``--json PATH``) and as a Markdown table beside it
(``PATH`` with ``.md``), headed by the machine they were measured on. ``--write-readme``
replaces the text between ``<!-- benchmarks:start -->`` and ``<!-- benchmarks:end -->``
in README.md with that table.

Benchmarks are declared in :data:`BENCHMARKS`; a declared script that is not in
``benchmarks/`` is reported as missing (not an error), and a ``bench_*.py`` that is not
declared is run with ``--json PATH [--quick]`` and read with the generic adapter. A
benchmark that fails or runs past ``--timeout`` is reported with its last lines of
output and the others go on; the exit status is 1 if any failed.

A benchmark can give run_all its rows directly: a top-level ``"table"`` list in its JSON
whose entries have the keys of :class:`Row` (``workload``, ``peer``, ``peer_value``,
``hookgnn_value``, ``unit``, ``ratio``, ``ratio_means``, ``runs``). The generic adapter
also reads ``"rows"`` entries with ``workload``, ``peer``, ``peer_ms``, ``hookgnn_ms`` and
``ratio``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
START, END = "<!-- benchmarks:start -->", "<!-- benchmarks:end -->"


@dataclass
class Row:
    """One comparison: ``ratio`` is what the benchmark reports, ``ratio_means`` says how to read it."""

    benchmark: str
    workload: str
    peer: str
    peer_value: float | None
    hookgnn_value: float | None
    unit: str
    ratio: float | None
    ratio_means: str
    runs: int | None = None


# ------------------------------------------------------------------------ adapters
def _f(x: Any) -> float | None:
    return None if x is None else float(x)


def scatter_rows(data: dict[str, Any]) -> list[Row]:
    """bench_scatter: forward + backward time and peak memory of every peer against hookgnn's
    default backend (``hookgnn``; ``hookgnn[compiled]`` in older JSON), per device, size and
    thread count. hookgnn's own variants (``hookgnn+plan``) are not peers; ``hookgnn[torch]``,
    the plain-PyTorch backend, is."""
    out = []
    groups: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for r in data["results"]:
        key = (r.get("device", "cpu"), r["edges"], r["features"], r.get("threads"))
        groups.setdefault(key, {})[r["method"]] = r
    for (device, edges, feats, threads), methods in groups.items():
        ours = methods.get("hookgnn", methods.get("hookgnn[compiled]"))
        if ours is None:
            continue
        where = f"{device}, E={edges:.0e}, F={feats}" + (f", {threads} thr" if threads else "")
        for name, r in methods.items():
            if r is ours or name == "hookgnn+plan":
                continue
            out.append(Row("bench_scatter", f"scatter max fwd+bwd, {where}", name, r["total_ms"], ours["total_ms"],
                           "ms", r["total_ms"] / ours["total_ms"], "peer / hookgnn (>1: hookgnn faster)",
                           data.get("runs")))
            if r.get("peak_mb", 0) > 0 and ours.get("peak_mb", 0) > 0:
                out.append(Row("bench_scatter", f"scatter max fwd+bwd peak memory, {where}", name, r["peak_mb"],
                               ours["peak_mb"], "MB", r["peak_mb"] / ours["peak_mb"],
                               "peer / hookgnn (>1: hookgnn smaller)", 1))
    return out


def patching_rows(data: dict[str, Any]) -> list[Row]:
    """bench_patching: batched sweeps and estimators against a one-patch-per-forward loop."""
    out = []
    runs = data.get("args", {}).get("repeats")
    for r in data["rows"]:
        what = f"{r['task']}, {r['corruption']}, {r['workload']} ({r['patches']} patches)"
        out.append(Row("bench_patching", f"activation sweep, {what}", "loop, one forward per patch", r["loop_ms"],
                       r["batched_ms"], "ms", r["batched_speedup"], "loop / hookgnn (speed-up)", runs))
        out.append(Row("bench_patching", f"attribution patching, {what}", "loop, one forward per patch",
                       r["loop_ms"], r["attribution_ms"], "ms", r["attribution_vs_loop"], "loop / hookgnn (speed-up)",
                       runs))
        if "atp1_ms" in r:
            out.append(Row("bench_patching", f"AtP* (1 exact round), {what}", "exact batched sweep",
                           r["batched_ms"], r["atp1_ms"], "ms", r["atp1_vs_exact"], "exact / AtP* (speed-up)", runs))
    return out


def eap_rows(data: dict[str, Any]) -> list[Row]:
    """bench_eap: batched EAP-IG against a per-graph loop."""
    runs = data.get("args", {}).get("runs")
    return [Row("bench_eap", r["workload"], r["peer"], r["peer_ms"], r["hookgnn_ms"], "ms", r["ratio"],
                "peer / hookgnn (speed-up)", runs) for r in data["rows"]]


def pyg_rows(data: dict[str, Any]) -> list[Row]:
    """bench_pyg: a wrapped PyG model against the bare model (the ratio is the overhead)."""
    return [Row("bench_pyg", r["workload"], r["peer"], r["peer_ms"], r["hookgnn_ms"], "ms", r["ratio"],
                "hookgnn / peer (overhead" + (f", target <= {r['target']})" if r.get("target") else ")"),
                data.get("runs")) for r in data["rows"]]


def tasks_rows(data: dict[str, Any]) -> list[Row]:
    """bench_tasks: labelling a graph with outputs and hints against networkx computing outputs only."""
    out = []
    for r in data["results"]:
        ratio = r["networkx_seconds"] / r["seconds"] if r["seconds"] else None
        out.append(Row("bench_tasks", f"{r['task']} labels + hints, n={r['n']}, E={r['E']}",
                       "networkx (outputs only)", r["networkx_seconds"] * 1e3, r["seconds"] * 1e3, "ms", ratio,
                       "peer / hookgnn (hookgnn also builds the hints)", data.get("runs")))
    return out


def reasoner_rows(data: dict[str, Any]) -> list[Row]:
    """train_reasoners: trained accuracy/error against the target (no peer library)."""
    out = []
    for name, r in data.items():
        for test, metrics in r["results"].items():
            for metric, value in metrics.items():
                if metric.endswith(("accuracy", "mae", "mse")) and "graph_" not in metric:
                    out.append(Row("train_reasoners", f"{name}: {test}, {metric}",
                                   f"trained in {r['train_seconds']:.0f} s", None, value, metric, None, "", 1))
    return out


def metamers_rows(data: dict[str, Any]) -> list[Row]:
    """bench_metamers: k metamers of one reference in one batch against k searches one by one."""
    return [Row("bench_metamers", f"{r['k']} metamers, {r['workload']} ({r['converged_batched']}/{r['searches']} found)",
                "k searches one by one", r["sequential_s"], r["batched_s"], "s", r["speedup"],
                "peer / hookgnn (speed-up)", r.get("runs", data.get("runs"))) for r in data["rows"]]


def invariance_rows(data: dict[str, Any]) -> list[Row]:
    """metamer_invariance: the fraction of metamers found per reasoner and search (no peer)."""
    return [Row("metamer_invariance", f"{e['model']}, {e['search']} metamers at tol {data['tol']:g}", "-", None,
                e["converged"], "fraction found", None, "", e["n"]) for e in data["summary"]]


def generic_rows(name: str) -> Callable[[dict[str, Any]], list[Row]]:
    """A benchmark without an adapter: its ``"table"`` if it has one, else ``"rows"`` with
    ``workload``/``peer``/``peer_ms``/``hookgnn_ms``/``ratio``."""

    def read(data: dict[str, Any]) -> list[Row]:
        if isinstance(data.get("table"), list):
            return [Row(**{"benchmark": name, "runs": None, "unit": "", "ratio_means": "", **r}) for r in data["table"]]
        rows = [r for r in data.get("rows", []) if isinstance(r, dict) and {"workload", "peer"} <= set(r)]
        return [Row(name, r["workload"], r["peer"], _f(r.get("peer_ms")), _f(r.get("hookgnn_ms")), "ms",
                    _f(r.get("ratio")), r.get("ratio_means", "as reported"), r.get("runs", data.get("runs")))
                for r in rows]

    return read


@dataclass
class Benchmark:
    """A benchmark script: its arguments for the full and the quick run, and its adapter."""

    script: str
    full: list[str] = field(default_factory=list)
    quick: list[str] = field(default_factory=lambda: ["--quick"])
    adapter: Callable[[dict[str, Any]], list[Row]] | None = None


BENCHMARKS: dict[str, Benchmark] = {
    # quick: one thread count (scatter) and a 32-node graph (patching) keep run_all --quick under 10 min on 2 cores
    "bench_scatter": Benchmark("bench_scatter.py", quick=["--quick", "--threads", "1"], adapter=scatter_rows),
    "bench_patching": Benchmark("bench_patching.py", quick=["--quick", "--nodes", "32"], adapter=patching_rows),
    "bench_eap": Benchmark("bench_eap.py", adapter=eap_rows),
    "bench_pyg": Benchmark("bench_pyg.py", full=["--threads", "1"], quick=["--quick", "--threads", "1"],
                           adapter=pyg_rows),
    "bench_tasks": Benchmark("bench_tasks.py", adapter=tasks_rows),
    "train_reasoners": Benchmark("train_reasoners.py", quick=["--steps-scale", "0.05"], adapter=reasoner_rows),
    "train_clrs_graphs": Benchmark("train_clrs_graphs.py", quick=["--quick"]),
    "causal_table": Benchmark("causal_table.py", quick=["--quick"]),
    "bench_metamers": Benchmark("bench_metamers.py", adapter=metamers_rows),
    "metamer_invariance": Benchmark("metamer_invariance.py", full=["--out", "out/metamers"],
                                    quick=["--quick", "--out", "out/metamers-quick"], adapter=invariance_rows),
    # its own rows ("table"): 2 threads against 1, quiet and beside a competing process
    "bench_threads": Benchmark("bench_threads.py"),
    # attribute(keep="rows") against its two passes, with and without the CPU block cache (generic "rows")
    "bench_block_cache": Benchmark("bench_block_cache.py", quick=["--quick"]),
    # added on other branches; run when present, reported as missing otherwise
    "bench_vs_pyg": Benchmark("bench_vs_pyg.py"),
    "bench_scaling": Benchmark("bench_scaling.py"),
}


def discover(folder: Path = HERE) -> dict[str, Benchmark]:
    """The declared benchmarks plus every undeclared ``bench_*.py`` in ``folder``."""
    found = dict(BENCHMARKS)
    for path in sorted(folder.glob("bench_*.py")):
        found.setdefault(path.stem, Benchmark(path.name))
    return found


# --------------------------------------------------------------------------- running
def machine() -> str:
    """Where the numbers come from (one line)."""
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:  # pragma: no cover
        torch_version = "not installed"
    return (f"{platform.machine()}, {os.cpu_count()} CPUs ({platform.processor() or platform.system()}), "
            f"Python {platform.python_version()}, torch {torch_version}, load average "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} at the start")


def run_one(name: str, bench: Benchmark, quick: bool, timeout: float, folder: Path) -> dict[str, Any]:
    """Run one benchmark script; returns its status, seconds, rows and (on failure) its output tail."""
    script = folder / bench.script
    if not script.exists():
        return {"name": name, "status": "missing", "seconds": 0.0, "rows": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / f"{name}.json"
        cmd = [sys.executable, str(script), *(bench.quick if quick else bench.full), "--json", str(out)]
        start = time.perf_counter()
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                                  env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                      [str(folder.parent), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)})
        except subprocess.TimeoutExpired as err:
            tail = (err.stdout or b"")[-2000:] if isinstance(err.stdout, bytes) else (err.stdout or "")[-2000:]
            return {"name": name, "status": f"timed out after {timeout:.0f} s", "seconds": timeout, "rows": [],
                    "output": str(tail)}
        seconds = time.perf_counter() - start
        if done.returncode != 0 or not out.exists():
            return {"name": name, "status": f"failed (exit {done.returncode})", "seconds": seconds, "rows": [],
                    "output": (done.stdout + done.stderr)[-2000:]}
        data = json.loads(out.read_text())
    adapter = bench.adapter or generic_rows(name)
    try:
        rows = adapter(data)
    except (KeyError, TypeError, ValueError) as err:
        return {"name": name, "status": f"ran, but its JSON has no readable rows ({err!r})", "seconds": seconds,
                "rows": [], "raw": data}
    return {"name": name, "status": "ok", "seconds": seconds, "rows": [asdict(r) for r in rows], "stdout": done.stdout}


def _num(x: float | None, unit: str = "") -> str:
    if x is None:
        return "-"
    if unit == "ms":
        return f"{x:.1f}" if abs(x) < 1000 else f"{x:.0f}"
    return f"{x:.3g}"


def markdown(report: dict[str, Any]) -> str:
    """The Markdown table of a report (rows grouped by benchmark), headed by the machine."""
    lines = [f"Measured {report['date']} on {report['machine']}; {report['setting']} setting; medians of the "
             "runs given; ratios as each row says. Regenerate with `python benchmarks/run_all.py --json out/bench.json"
             f"{' --quick' if report['setting'] == 'quick' else ''} --write-readme`.", ""]
    lines += ["| benchmark | workload | peer | peer | hookgnn | unit | ratio | ratio means | runs |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in report["rows"]:
        lines.append(f"| {r['benchmark']} | {r['workload']} | {r['peer']} | {_num(r['peer_value'], r['unit'])} | "
                     f"{_num(r['hookgnn_value'], r['unit'])} | {r['unit']} | {_num(r['ratio'])}"
                     f"{'x' if r['ratio'] is not None else ''} | {r['ratio_means']} | {r['runs'] or '-'} |")
    problems = [b for b in report["benchmarks"] if b["status"] != "ok"]
    if problems:
        lines += ["", "Not in the table: " + "; ".join(f"{b['name']} ({b['status']})" for b in problems) + "."]
    return "\n".join(lines) + "\n"


def write_readme(readme: Path, table: str) -> None:
    """Replace the text between the benchmark markers of ``readme`` with ``table``."""
    text = readme.read_text()
    if START not in text or END not in text or text.index(START) > text.index(END):
        raise SystemExit(f"{readme} has no '{START}' ... '{END}' section to replace; add the two markers "
                         "where the benchmark table belongs")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{table}{END}{tail}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", type=Path, required=True, help="write the report here (and the table beside it, .md)")
    p.add_argument("--quick", action="store_true", help="every benchmark's quick setting (minutes, not hours)")
    p.add_argument("--only", nargs="+", default=None, help="run only these benchmarks (names without .py)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per benchmark (default: 420 with --quick, none otherwise)")
    p.add_argument("--write-readme", action="store_true", help="put the table into README.md between the markers")
    p.add_argument("--readme", type=Path, default=HERE.parent / "README.md", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    # check every output before minutes of measuring
    for path in (args.json, args.json.with_suffix(".md")):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        except OSError as err:
            p.error(f"--json {args.json}: cannot write {path}: {err}")
    if args.write_readme:
        text = args.readme.read_text() if args.readme.exists() else ""
        if START not in text or END not in text:
            p.error(f"--write-readme: {args.readme} has no '{START}' ... '{END}' markers")
    benches = discover()
    if args.only:
        unknown = sorted(set(args.only) - set(benches))
        if unknown:
            p.error(f"--only: unknown benchmarks {unknown}; known: {sorted(benches)}")
        benches = {k: v for k, v in benches.items() if k in args.only}
    timeout = args.timeout or (420.0 if args.quick else 24 * 3600.0)
    report: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "machine": machine(),
                              "setting": "quick" if args.quick else "full", "benchmarks": [], "rows": []}
    start = time.perf_counter()
    for name, bench in benches.items():
        print(f"[run_all] {name} ...", flush=True)
        result = run_one(name, bench, args.quick, timeout, HERE)
        print(f"[run_all] {name}: {result['status']} ({result['seconds']:.0f} s, {len(result['rows'])} rows)",
              flush=True)
        if result["status"] not in ("ok", "missing"):
            print(result.get("output", ""), file=sys.stderr)
        report["benchmarks"].append({k: v for k, v in result.items() if k in ("name", "status", "seconds", "output")})
        report["rows"] += result["rows"]
    report["seconds"] = time.perf_counter() - start
    table = markdown(report)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    args.json.with_suffix(".md").write_text(table)
    print(table)
    print(f"[run_all] {len(report['rows'])} rows in {report['seconds']:.0f} s: {args.json}, "
          f"{args.json.with_suffix('.md')}")
    if args.write_readme:
        write_readme(args.readme, table)
        print(f"[run_all] table written into {args.readme}")
    failed = [b["name"] for b in report["benchmarks"] if b["status"] not in ("ok", "missing")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
