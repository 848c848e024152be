"""The Python examples of the README and of the docs' guides run as written: each page's
blocks one after the other in one namespace, on the 0.2 names only.

Each page runs in a fresh interpreter without the suite's runtime type checking (which makes
the training and patching calls in them ~30x slower); the functions they call are
type-checked by their own tests. A ``DeprecationWarning`` from hookgnn (a 0.1 name) is an
error there, so the pages cannot drift back to the old spellings.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from deprecations import preamble

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, ROOT / "docs" / "index.md", *sorted((ROOT / "docs" / "guide").glob("*.md"))]
BLOCK = re.compile(r"```python\n(.*?)```", flags=re.S)
# the docs home's and the guides' examples (a few minutes) run in their own CI step, `make docs`;
# the README's run in every suite run
RUN_DOC_PAGES = os.environ.get("HOOKGNN_RUN_DOC_EXAMPLES", "") not in ("", "0")

# hookgnn's deprecation warnings are errors, as in the suite (pyproject.toml's filterwarnings)
RUNNER = preamble() + """
import re, sys, torch
torch.set_num_threads(1)
text = open(sys.argv[1]).read()
namespace = {}
for i, block in enumerate(re.findall(r"```python\\n(.*?)```", text, flags=re.S)):
    print(f"block {i}", flush=True)
    exec(compile(block, sys.argv[1], "exec"), namespace)
print("all blocks ran")
"""


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_python_blocks_run(page: Path, tmp_path: Path) -> None:
    assert BLOCK.findall(page.read_text()), f"{page.relative_to(ROOT)} has no python examples"
    if page != README and not RUN_DOC_PAGES:
        pytest.skip("the docs pages' examples run in their own CI step: make docs (HOOKGNN_RUN_DOC_EXAMPLES=1)")
    # this checkout's hookgnn, not whichever one the environment has installed (a worktree, another clone)
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    run = subprocess.run([sys.executable, "-c", RUNNER, str(page)], capture_output=True, text=True,
                         timeout=600, cwd=tmp_path, env={**os.environ, "PYTHONPATH": path})
    assert run.returncode == 0, f"{run.stdout[-2000:]}\n{run.stderr[-4000:]}"
    assert run.stdout.strip().endswith("all blocks ran")


def test_readme_is_the_short_path_in() -> None:
    text = README.read_text()
    assert len(text.splitlines()) <= 280, "the README is the short path in; move detail to a docs/guide page"
    assert text.startswith("# hookgnn\n\n```bash\nmake demo") and "\nmake test " in text.split("```")[1]
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).exists(), f"README links {link}, which does not exist"
