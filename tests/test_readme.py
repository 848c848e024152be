"""The README's Python examples run as written, one after the other in one namespace.

They run in a fresh interpreter without the suite's runtime type checking (which makes
the training and patching calls in them ~30x slower); the functions they call are
type-checked by their own tests.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"

RUNNER = """
import re, sys, torch
torch.set_num_threads(1)
text = open(sys.argv[1]).read()
namespace = {}
for i, block in enumerate(re.findall(r"```python\\n(.*?)```", text, flags=re.S)):
    print(f"block {i}", flush=True)
    exec(compile(block, sys.argv[1], "exec"), namespace)
print("all blocks ran")
"""


def test_readme_python_blocks_run(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python examples"
    # this checkout's hookgnn, not whichever one the environment has installed (a worktree, another clone)
    path = os.pathsep.join([str(README.parent), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    run = subprocess.run([sys.executable, "-c", RUNNER, str(README)], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path, env={**os.environ, "PYTHONPATH": path})
    assert run.returncode == 0, f"{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    assert run.stdout.strip().endswith("all blocks ran")
