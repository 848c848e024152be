"""The tutorials: jupytext notebooks that run as scripts and as notebooks.

* default suite: every tutorial is a percent-format notebook (read back by jupytext), the
  settings helper refuses an output folder it cannot write, and tutorial 1 executes as a
  notebook (nbclient) and writes what it says;
* ``make tutorials`` (``HOOKGNN_RUN_TUTORIALS=1``): every tutorial's quick setting executes
  as a notebook (what CI runs in its own step); with ``HOOKGNN_TUTORIAL_NOTEBOOKS=DIR`` (the
  Makefile: ``out/notebooks``) each executed notebook is kept as ``DIR/<name>.ipynb``, outputs
  and figures embedded, for the docs site (``docs/hooks.py``);
* slow: the full settings of tutorials 4 and 5 reproduce the targets quoted in their text.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from deprecations import preamble

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "tutorials"
TUTORIALS = sorted(FOLDER.glob("0*.py"))
RUN_QUICK = os.environ.get("HOOKGNN_RUN_TUTORIALS", "") not in ("", "0")
KEEP_NOTEBOOKS = os.environ.get("HOOKGNN_TUTORIAL_NOTEBOOKS", "")
QUICK_NOTE = ('<div class="admonition note"><p class="admonition-title">Executed at the quick setting</p>'
              "<p>The outputs and figures below come from the tutorial's <em>quick</em> setting (the one CI runs: "
              "less training, fewer graphs), so their numbers can differ from those quoted in the text, "
              "which come from the full setting (<code>python tutorials/{name}.py</code>).</p></div>")


def _env(out: Path, quick: bool) -> dict[str, str]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return {**os.environ, "PYTHONPATH": path, "HOOKGNN_TUTORIAL_QUICK": "1" if quick else "0",
            "HOOKGNN_TUTORIAL_OUT": str(out), "MPLBACKEND": "Agg"}


def execute_notebook(script: Path, out: Path, quick: bool = True, timeout: int = 600,
                     keep: Path | None = None) -> dict:
    """Convert ``script`` with jupytext, execute it with nbclient (cwd: tutorials/), and
    return its results.json. A first cell turns hookgnn's deprecation warnings into errors
    (:mod:`deprecations`): the tutorials use the 0.2 names only. The executed notebook of a
    quick run is kept in ``keep`` and in ``HOOKGNN_TUTORIAL_NOTEBOOKS`` (each if set)."""
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    notebook = jupytext.read(script)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(preamble()))
    saved = dict(os.environ)
    os.environ.update(_env(out, quick))  # the kernel inherits the environment
    try:
        nbclient.NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(FOLDER)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    for folder in (keep, Path(KEEP_NOTEBOOKS) if KEEP_NOTEBOOKS else None):
        if folder is not None and quick:
            keep_notebook(notebook, script.stem, folder)
    return json.loads((out / "results.json").read_text())


def keep_notebook(notebook: Any, name: str, folder: Path) -> Path:
    """Write an executed notebook as ``folder/<name>.ipynb`` for the docs site: without the
    preamble cell, with a note after the title that its outputs are the quick setting's."""
    import copy

    import nbformat

    kept = copy.deepcopy(notebook)
    cells = kept.cells[1:]  # the preamble is a test's business, not the reader's
    note = nbformat.v4.new_markdown_cell(QUICK_NOTE.format(name=name))
    kept.cells = cells[:1] + [note] + cells[1:]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.ipynb"
    nbformat.write(kept, path)
    return path


@pytest.mark.parametrize("script", TUTORIALS, ids=lambda p: p.stem)
def test_every_tutorial_is_a_percent_notebook_with_text_and_code(script: Path) -> None:
    jupytext = pytest.importorskip("jupytext")
    notebook = jupytext.read(script)
    kinds = [c.cell_type for c in notebook.cells]
    assert kinds[0] == "markdown" and notebook.cells[0].source.startswith(f"# {int(script.stem[:2])}.")
    assert kinds.count("markdown") >= 3 and kinds.count("code") >= 3
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")  # committed without outputs
    assert "settings(" in script.read_text()  # every tutorial takes --quick / --out


def test_tutorials_are_listed_in_the_docs_navigation() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    for script in TUTORIALS:
        assert f"tutorials/{script.name}" in nav
        assert (ROOT / "docs" / "tutorials" / script.name).resolve() == script.resolve()


def test_settings_refuse_an_output_folder_they_cannot_write(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = subprocess.run([sys.executable, str(FOLDER / "01_quickstart.py"), "--out", str(blocker / "sub")],
                          capture_output=True, text=True, env=_env(tmp_path, True), cwd=ROOT, timeout=120)
    assert done.returncode != 0
    assert str(blocker) in done.stderr and "cannot write" in done.stderr and "Traceback" not in done.stderr


def test_quickstart_executes_as_a_notebook(tmp_path: Path) -> None:
    results = execute_notebook(FOLDER / "01_quickstart.py", tmp_path, keep=tmp_path / "notebooks")
    assert results["per_graph_selection_matches"] is True
    assert results["setting"] == "quick" and results["machine"]
    figure = (tmp_path / "state_norms.png").read_bytes()
    assert len(figure) > 1000
    # the notebook kept for the docs site: the title first, then the quick-setting note, no
    # preamble, and the saved figure shown as an output (the very PNG written to --out)
    nbformat = pytest.importorskip("nbformat")
    kept = nbformat.read(tmp_path / "notebooks" / "01_quickstart.ipynb", as_version=4)
    assert kept.cells[0].source.startswith("# 1.")
    assert "Executed at the quick setting" in kept.cells[1].source
    assert all("import warnings" not in c.source for c in kept.cells if c.cell_type == "code")
    images = [base64.b64decode(o["data"]["image/png"]) for c in kept.cells if c.cell_type == "code"
              for o in c.outputs if "image/png" in o.get("data", {})]
    assert images == [figure]


@pytest.mark.skipif(not RUN_QUICK, reason="the quick tutorials run in their own CI step: make tutorials")
@pytest.mark.parametrize("script", TUTORIALS[1:], ids=lambda p: p.stem)
def test_quick_setting_executes_as_a_notebook(script: Path, tmp_path: Path) -> None:
    results = execute_notebook(script, tmp_path)
    assert results["setting"] == "quick"
    assert any(p.suffix == ".png" for p in tmp_path.iterdir())
    expected = {"02": "decoded_pointer_agrees", "03": "audit", "04": "circuit_edges", "05": "joint_edges", "06": "summary",
                "07": "table"}
    assert expected[script.stem[:2]] in results
    if script.stem.startswith("03"):  # the OR case: single patches see nothing, the report names both paths
        assert results["or_largest_single_effect"] == 0.0 and results["or_both_paths_named"] is True


def _run_full(script: str, out: Path) -> dict:
    done = subprocess.run([sys.executable, str(FOLDER / script), "--out", str(out)], capture_output=True,
                          text=True, env=_env(out, False), cwd=ROOT, timeout=3 * 3600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_full_tutorial_4_reproduces_the_published_bellman_ford_circuit(tmp_path: Path) -> None:
    r = _run_full("04_minar_bellman_ford.py", tmp_path)
    assert r["setting"] == "full"
    assert r["circuit_edges"] <= 20
    assert r["circuit_loss"] <= 2 * r["full_loss"]
    assert r["ablated_loss"] >= 100 * r["full_loss"]
    assert r["targets_met"] is True


@pytest.mark.slow
def test_full_tutorial_5_keeps_bfs_with_its_circuit(tmp_path: Path) -> None:
    r = _run_full("05_parallel_bf_bfs.py", tmp_path)
    assert r["joint_edges"] is not None and r["joint_edges"] <= 20
    assert r["bfs_circuit_bfs_accuracy"] >= r["full_bfs_accuracy"] - 0.02
    assert r["bfs_circuit_bfs_accuracy"] > r["all_reached_baseline"]
    assert r["joint_ablated_loss"] >= 100 * r["full_loss"]


@pytest.mark.slow
@pytest.mark.parametrize("script", ["02_reading_a_reasoner.py", "03_patching.py"])
def test_full_setting_of_tutorials_2_and_3_runs(script: str, tmp_path: Path) -> None:
    assert _run_full(script, tmp_path)["setting"] == "full"
