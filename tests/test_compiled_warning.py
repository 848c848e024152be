"""Without a working C++ compiler the scatter kernel is not built: one short warning, at the user's line, saying
what to install and that the results are identical; no torch banner, no ninja command line."""

import os
import subprocess
import sys
import warnings
from pathlib import Path

import torch

from hookgnn.ops import compiled
from hookgnn.ops.scatter import scatter_max

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """\
import torch
from hookgnn.ops.scatter import scatter_max
src, index = torch.tensor([[1.0], [3.0], [2.0], [-1.0]]), torch.tensor([0, 0, 1, 1])
out, arg = scatter_max(src, index, dim_size=3)  # the user's line
print(out.flatten().tolist(), arg.flatten().tolist())
"""


def test_a_missing_compiler_gives_one_short_warning_at_the_users_line(tmp_path):
    script = tmp_path / "user_script.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if k not in ("HOOKGNN_SCATTER_BACKEND", "HOOKGNN_VERBOSE_BUILD")}
    env.update(CXX=str(tmp_path / "no-such-c++"), TORCH_EXTENSIONS_DIR=str(tmp_path / "ext"),  # no cached build
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout == "[3.0, 2.0, 0.0] [1, 2, -1]\n"  # the plain PyTorch path: the same values
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and len(done.stderr) < 600, done.stderr  # the warning and the user's source line
    assert lines[0].startswith(f"{script}:4: RuntimeWarning: hookgnn: no C++ compiler")
    assert "no-such-c++" in lines[0] and "install" in lines[0] and "identical results" in lines[0]
    assert "ninja" not in done.stderr and "WARNING" not in done.stderr and "ops/backend.py" not in done.stderr


def test_a_failed_build_is_summarised_in_one_line_at_the_callers_line(monkeypatch):
    log = ("Error building extension 'hookgnn_scatter_extreme_0123': [1/2] c++ -MMD -MF main.o.d -O3 -c main.cpp\n"
           "FAILED: main.o\nc++ -MMD -MF main.o.d -O3 -c main.cpp\nmain.cpp:1:10: fatal error: omp.h: No such file\n"
           "ninja: build stopped: subcommand failed.\n")

    def broken_build(openmp, native):
        raise RuntimeError(log)

    monkeypatch.delenv("HOOKGNN_SCATTER_BACKEND", raising=False)  # make test-portable sets it to torch
    monkeypatch.setattr(compiled, "_build", broken_build)
    monkeypatch.setattr(compiled, "_already_built", lambda openmp, native: False)
    monkeypatch.setattr(compiled, "compiler", lambda: "/usr/bin/c++")  # a compiler is there, the build fails
    monkeypatch.setattr(compiled, "openmp_compiles", lambda: False)
    compiled.reset()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out, _ = scatter_max(torch.tensor([[1.0], [3.0]]), torch.tensor([0, 0]), dim_size=1)  # the caller's line
        assert out.tolist() == [[3.0]]
        found = [w for w in caught if "scatter max/min kernel" in str(w.message)]
        assert len(found) == 1, [str(w.message) for w in caught]
        message = str(found[0].message)
        assert found[0].filename == __file__  # not hookgnn/ops/backend.py
        assert "omp.h: No such file" in message and "identical results" in message
        assert "ninja" not in message and "-MMD" not in message and len(message) < 500
        assert "omp.h" in str(compiled.build_error())  # the whole log stays at hand
    finally:
        monkeypatch.undo()
        compiled.reset()
        compiled.load()
