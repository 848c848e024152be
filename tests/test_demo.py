"""The main job prints the README's block bit for bit on any CPU code path, and ``--train`` says it trained.

``hookgnn demo`` analyses the reference checkpoint shipped in the package; its standard output is
compared with ``tests/data/demo_stdout.txt`` (the block the README shows) in fresh interpreters under
two torch CPU code paths (``ATEN_CPU_CAPABILITY``: this machine's native one, and ``default``, torch's
portable kernels) and two thread counts. The default suite runs the native one; ``make demo-check``
(a CI step) runs both. The runs are subprocesses, as ``make demo`` is: under the suite's runtime type
checking (jaxtyping + beartype on every call) the demo takes 30x longer, and every function it calls
is type-checked by its own tests already.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from deprecations import preamble
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hookgnn.cli.demo import rank_correlation

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = ROOT / "tests" / "data" / "demo_stdout.txt"
# hookgnn's deprecation warnings are errors here too: the demo uses the 0.2 names only
CLI = preamble() + "import sys\nfrom hookgnn.cli import main\nmain(sys.argv[1:])\n"


def _demo(cwd: Path, *args: str, capability: str | None = None) -> subprocess.CompletedProcess:
    """``hookgnn demo --out out/demo ARGS`` in a fresh interpreter in ``cwd``, this checkout's hookgnn, on the CPU
    code path ``capability`` (``None``: torch's choice for this CPU)."""
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "HOOKGNN_SCATTER_BACKEND")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if capability is not None:
        env["ATEN_CPU_CAPABILITY"] = capability
    return subprocess.run([sys.executable, "-c", CLI, "demo", "--out", "out/demo", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd, env=env)


@pytest.mark.parametrize("capability, threads", [
    pytest.param(None, "1", id="native-path-1-thread"),
    pytest.param("default", "2", id="default-path-2-threads", marks=pytest.mark.slow),  # make demo-check runs it
])
def test_demo_prints_the_readme_block_on_any_cpu_code_path(tmp_path, capability, threads):
    run = _demo(tmp_path, "--threads", threads, capability=capability)
    assert run.returncode == 0, run.stderr[-4000:]
    assert run.stdout == EXPECTED.read_text(), (
        f"hookgnn demo printed (stderr: {run.stderr.splitlines()[:1]}):\n{run.stdout}")
    # what varies with the machine goes to stderr: the code path and threads it ran on, the timings
    header = next(line for line in run.stderr.splitlines() if line.startswith("hookgnn demo on torch"))
    assert f"{threads} torch thread" in header
    if capability is not None:
        assert f"CPU code path {capability.upper()} " in header
    assert "timings:" in run.stderr and re.search(r"\d s\b", run.stdout) is None
    for name in ("sweep.png", "circuit.png", "faithfulness.png"):
        assert (tmp_path / "out" / "demo" / name).stat().st_size > 1000


def test_readme_shows_the_demo_block():
    block = EXPECTED.read_text()
    assert block.startswith("1. model: hookgnn/data/demo_reference.pt") and "4. circuit" in block
    assert f"```\n{block}```" in (ROOT / "README.md").read_text(), (
        "the README's main-job block is not tests/data/demo_stdout.txt: paste that file's text into it")


def test_demo_train_trains_a_model_here_and_says_so(tmp_path):
    run = _demo(tmp_path, "--train", "--train-steps", "30", "--seed", "0")
    assert run.returncode == 0, run.stderr[-4000:]
    first = run.stdout.splitlines()[0]
    assert first.startswith("1. train (--train)") and "30 steps, seed 0" in first and "not the reference" in run.stdout
    assert "4. circuit" in run.stdout and "AtP*, top 16 verified" in run.stdout
    assert "trained in" in run.stderr
    assert (tmp_path / "out" / "demo" / "circuit.png").stat().st_size > 1000


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(-3, 3), st.integers(-3, 3)), min_size=3, max_size=30))
def test_rank_correlation_is_spearmans_rho_with_average_ranks_for_ties(pairs):
    scipy_stats = pytest.importorskip("scipy.stats")
    a, b = (torch.tensor([float(p[i]) for p in pairs]) for i in (0, 1))
    assume(len(set(a.tolist())) > 1 and len(set(b.tolist())) > 1)
    want = scipy_stats.spearmanr(a.numpy(), b.numpy()).statistic  # ties share their mean rank there too
    assert rank_correlation(a, b) == pytest.approx(float(want), rel=1e-9, abs=1e-9)


def test_rank_correlation_ignores_differences_below_its_rounding():
    torch.manual_seed(0)
    exact = torch.cat([torch.zeros(50), torch.linspace(1.0, 2.0, 10)])
    noisy = exact + 1e-7 * torch.randn(60)  # last-bit noise on the zeros: would reorder 50 ranks
    assert rank_correlation(exact, noisy) == pytest.approx(1.0, abs=1e-12)
    assert rank_correlation(exact, noisy, digits=9) < 0.9
