"""The main job runs end to end and writes its figures.

It runs in a fresh interpreter, as ``make demo`` does: under the test suite's runtime
type checking (jaxtyping + beartype on every call) it takes 30x longer, and every
function it calls is type-checked by its own tests already.
"""

import json
import math
import subprocess
import sys

import pytest
from deprecations import preamble

pytest.importorskip("matplotlib")

SCRIPT = """
import json, sys, torch
torch.set_num_threads(1)
from hookgnn.cli.demo import run_demo
print(json.dumps(run_demo(sys.argv[1], seed=0, train_steps=30)))
"""


def test_demo_trains_patches_and_draws_a_circuit(tmp_path):
    # hookgnn's deprecation warnings are errors here too: the demo uses the 0.2 names only
    run = subprocess.run([sys.executable, "-c", preamble() + SCRIPT, str(tmp_path)], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout.strip().splitlines()[-1])
    for name in ("sweep.png", "circuit.png", "faithfulness.png"):
        assert (tmp_path / name).stat().st_size > 1000
    assert 0.0 <= results["pointer_accuracy_n12"] <= 1.0
    assert 1 <= results["circuit_size_exact"] <= 380 and math.isfinite(results["attribution_spearman"])
    assert "4. circuit" in run.stdout and "AtP*" in run.stdout
