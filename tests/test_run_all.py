"""benchmarks/run_all.py: every benchmark's JSON read into one table, without running the
real benchmarks (tiny stand-in scripts and JSON in each benchmark's own format)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
run_all = importlib.util.module_from_spec(spec)
sys.modules["run_all"] = run_all
spec.loader.exec_module(run_all)


def test_scatter_rows_compare_every_method_with_the_compiled_kernel() -> None:
    data = {"runs": 5, "results": [
        {"edges": 1000, "features": 8, "method": "hookgnn[compiled]", "total_ms": 2.0},
        {"edges": 1000, "features": 8, "method": "torch amax", "total_ms": 9.0},
        {"edges": 1000, "features": 8, "method": "torch_scatter", "total_ms": 3.0}]}
    rows = {r.peer: r for r in run_all.scatter_rows(data) if r.unit == "ms"}
    assert set(rows) == {"torch amax", "torch_scatter"}
    assert rows["torch amax"].ratio == pytest.approx(4.5) and rows["torch amax"].hookgnn_value == 2.0
    assert rows["torch_scatter"].runs == 5


def test_scatter_rows_per_device_size_and_threads_with_memory() -> None:
    base = {"edges": 100, "features": 4, "device": "cpu"}
    data = {"runs": 3, "results": [
        {**base, "threads": 1, "method": "hookgnn", "total_ms": 2.0, "peak_mb": 10.0},
        {**base, "threads": 1, "method": "hookgnn+plan", "total_ms": 1.0, "peak_mb": 10.0},
        {**base, "threads": 1, "method": "torch amax", "total_ms": 6.0, "peak_mb": 40.0},
        {**base, "threads": 2, "method": "hookgnn", "total_ms": 1.0, "peak_mb": 0.0},
        {**base, "threads": 2, "method": "torch amax", "total_ms": 3.0, "peak_mb": 40.0}]}
    rows = run_all.scatter_rows(data)
    assert {r.peer for r in rows} == {"torch amax"}  # hookgnn's own variants are not peers
    assert sorted((r.unit, r.ratio) for r in rows) == [("MB", 4.0), ("ms", 3.0), ("ms", 3.0)]
    assert all("thr" in r.workload for r in rows)


def test_tasks_rows_divide_networkx_time_by_hookgnn_time() -> None:
    data = {"runs": 3, "results": [{"task": "bfs", "n": 10, "E": 30, "seconds": 0.5, "networkx_seconds": 0.1}]}
    (row,) = run_all.tasks_rows(data)
    assert row.ratio == pytest.approx(0.2) and row.peer_value == pytest.approx(100.0) and row.unit == "ms"


def test_generic_rows_read_a_table_or_rows() -> None:
    table = {"table": [{"workload": "w", "peer": "p", "peer_value": 3.0, "hookgnn_value": 1.0, "unit": "MB",
                        "ratio": 3.0, "ratio_means": "peer / hookgnn"}]}
    (row,) = run_all.generic_rows("bench_x")(table)
    assert (row.benchmark, row.unit, row.ratio) == ("bench_x", "MB", 3.0)
    rows = {"rows": [{"workload": "w", "peer": "p", "peer_ms": 2.0, "hookgnn_ms": 1.0, "ratio": 2.0}, {"other": 1}]}
    (row,) = run_all.generic_rows("bench_y")(rows)
    assert (row.peer_value, row.hookgnn_value, row.unit) == (2.0, 1.0, "ms")


def _script(folder: Path, name: str, body: str) -> None:
    (folder / name).write_text("import json, sys\nargs = sys.argv\npath = args[args.index('--json') + 1]\n" + body)


def test_missing_failing_and_undeclared_benchmarks(tmp_path: Path) -> None:
    _script(tmp_path, "bench_new.py", "json.dump({'table': [{'workload': 'quick' if '--quick' in args else 'full', "
                                      "'peer': 'p', 'peer_value': 2, 'hookgnn_value': 1, 'ratio': 2}]}, open(path, 'w'))")
    _script(tmp_path, "bench_broken.py", "print('about to fail'); raise SystemExit(3)")
    found = run_all.discover(tmp_path)
    assert "bench_new" in found and "bench_vs_pyg" in found  # undeclared found, declared listed
    missing = run_all.run_one("bench_vs_pyg", found["bench_vs_pyg"], True, 60, tmp_path)
    assert missing["status"] == "missing" and missing["rows"] == []
    ok = run_all.run_one("bench_new", found["bench_new"], True, 60, tmp_path)
    assert ok["status"] == "ok" and ok["rows"][0]["workload"] == "quick"
    broken = run_all.run_one("bench_broken", found["bench_broken"], False, 60, tmp_path)
    assert broken["status"] == "failed (exit 3)" and "about to fail" in broken["output"]


def test_markdown_and_readme_section(tmp_path: Path) -> None:
    report = {"date": "2026-01-01", "machine": "m", "setting": "quick",
              "benchmarks": [{"name": "bench_eap", "status": "ok"}, {"name": "bench_vs_pyg", "status": "missing"}],
              "rows": [dict(benchmark="bench_eap", workload="w", peer="loop", peer_value=10.0, hookgnn_value=2.0,
                            unit="ms", ratio=5.0, ratio_means="peer / hookgnn", runs=3)]}
    table = run_all.markdown(report)
    assert "| bench_eap | w | loop | 10.0 | 2.0 | ms | 5x | peer / hookgnn | 3 |" in table
    assert "bench_vs_pyg (missing)" in table and "on m" in table
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\n{run_all.START}\nold\n{run_all.END}\n\nafter\n")
    run_all.write_readme(readme, table)
    text = readme.read_text()
    assert "old" not in text and table in text and text.endswith("after\n")
    readme.write_text("# no markers\n")
    with pytest.raises(SystemExit, match="markers"):
        run_all.write_readme(readme, table)


def test_main_checks_its_output_path_first(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit):
        run_all.main(["--json", str(blocker / "bench.json"), "--only", "bench_eap"])
    with pytest.raises(SystemExit):
        run_all.main(["--json", str(tmp_path / "b.json"), "--only", "no_such_benchmark"])


def test_every_script_in_benchmarks_is_run() -> None:
    scripts = {p.stem for p in (ROOT / "benchmarks").glob("*.py")} - {"run_all"}
    assert scripts <= set(run_all.discover())


def test_metamers_rows_divide_sequential_by_batched_time() -> None:
    data = {"runs": 3, "rows": [{"workload": "weights", "k": 8, "sequential_s": 4.0, "batched_s": 2.0,
                                 "speedup": 2.0, "converged_batched": 23, "searches": 24, "runs": 3}]}
    (row,) = run_all.metamers_rows(data)
    assert (row.peer_value, row.hookgnn_value, row.unit, row.ratio, row.runs) == (4.0, 2.0, "s", 2.0, 3)
    assert "23/24" in row.workload


def test_invariance_rows_give_the_fraction_found_per_model_and_search() -> None:
    data = {"tol": 1e-3, "summary": [{"model": "relu", "search": "weights", "n": 6, "converged": 0.5},
                                     {"model": "elu", "search": "structure", "n": 6, "converged": 0.0}]}
    rows = run_all.invariance_rows(data)
    assert [(r.hookgnn_value, r.ratio, r.runs) for r in rows] == [(0.5, None, 6), (0.0, None, 6)]
    assert rows[1].workload == "elu, structure metamers at tol 0.001"
