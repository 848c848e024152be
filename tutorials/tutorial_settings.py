"""Settings shared by the tutorials: quick or full, and where figures and numbers go.

A tutorial runs as a script (``python tutorials/04_minar_bellman_ford.py --quick --out DIR``)
or as a notebook (opened with jupytext, or executed by nbclient). A notebook has no
command line, so there the same settings come from the environment:
``HOOKGNN_TUTORIAL_QUICK=1`` and ``HOOKGNN_TUTORIAL_OUT=DIR``.

The *quick* setting is what CI runs on every submission (all tutorials in a few minutes
on 2 cores); the *full* setting reproduces the numbers quoted in the tutorial's text.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass
class Settings:
    """``quick``: the CI setting; ``out``: the folder for figures and ``results.json``."""

    quick: bool
    out: Path
    results: dict[str, Any] = field(default_factory=dict)

    def pick(self, quick: Any, full: Any) -> Any:
        """``quick`` in the quick setting, else ``full``."""
        return quick if self.quick else full

    @property
    def caption(self) -> str | None:
        """The caption of a figure made at the quick setting (``None`` at the full setting): its
        numbers come from a shorter run and may contradict the text, which quotes the full one."""
        if not self.quick:
            return None
        return ("quick setting (CI, short training): the numbers in this figure may differ from the text, "
                "which quotes the full setting")

    def figure(self, fig: Any, name: str) -> Path:
        """Save a matplotlib figure as ``out/name`` and return its path. In a notebook whose
        matplotlib backend draws nothing inline (``Agg``, as when nbclient executes it for the
        docs site), the saved PNG is also shown as the cell's output."""
        path = self.out / name
        fig.savefig(path, dpi=110, bbox_inches="tight")
        if _in_notebook() and path.suffix == ".png" and _backend_is_agg():
            from IPython.display import Image, display

            display(Image(data=path.read_bytes(), format="png"))
        return path

    def record(self, **values: Any) -> None:
        """Keep numbers for ``results.json`` (written by :meth:`save`)."""
        self.results.update(values)

    def save(self) -> Path:
        """Write ``out/results.json``: the recorded numbers, the setting, date and machine."""
        self.results.update(setting="quick" if self.quick else "full", date=time.strftime("%Y-%m-%d"),
                            machine=machine())
        path = self.out / "results.json"
        path.write_text(json.dumps(self.results, indent=2, default=float) + "\n")
        return path


def machine() -> str:
    """One line describing where the numbers were taken."""
    return (f"{platform.machine()} {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads, "
            f"torch {torch.__version__}, Python {platform.python_version()}")


def _in_notebook() -> bool:
    return "ipykernel" in sys.modules


def _backend_is_agg() -> bool:
    import matplotlib

    return matplotlib.get_backend().lower() == "agg"


def settings(name: str, argv: list[str] | None = None) -> Settings:
    """Parse ``--quick`` and ``--out`` (script) or the environment (notebook); make the folder.

    The output folder defaults to ``out/tutorials/<name>`` and is created and tested for
    writing before any work, so a long run never fails at its last step.
    """
    env_quick = os.environ.get("HOOKGNN_TUTORIAL_QUICK", "") not in ("", "0")
    env_out = os.environ.get("HOOKGNN_TUTORIAL_OUT")
    if argv is None and _in_notebook():
        quick, out = env_quick, Path(env_out or f"out/tutorials/{name}")
    else:
        p = argparse.ArgumentParser(description=f"hookgnn tutorial {name}")
        p.add_argument("--quick", action="store_true", default=env_quick,
                       help="the short CI setting (the full setting reproduces the numbers in the text)")
        p.add_argument("--out", type=Path, default=Path(env_out or f"out/tutorials/{name}"),
                       help="folder for figures and results.json")
        args = p.parse_args(sys.argv[1:] if argv is None else argv)
        quick, out = args.quick, args.out
    probe = out / ".write-test"
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except OSError as err:
        raise SystemExit(f"tutorial {name}: cannot write to --out {out}: {err}") from None
    print(f"tutorial {name}: {'quick' if quick else 'full'} setting, figures and results.json in {out}")
    return Settings(quick, out)


def bellman_ford_reasoner(s: Settings, steps: int, seed: int = 0) -> Any:
    """The Bellman-Ford reasoner of tutorials 2 and 3: an MPNN (max aggregation, 32 wide,
    weight-tied rounds) trained with hint supervision on Erdős–Rényi graphs of 8-12 nodes.

    Trained once per ``steps`` and kept in ``<out>/../cache/`` (a hookgnn checkpoint, loaded
    with ``weights_only=True``), so tutorial 3 reuses what tutorial 2 trained.
    """
    from hookgnn.training import TrainConfig, load_checkpoint, save_checkpoint, train

    config = TrainConfig(task="bellman_ford", processor="mpnn", d_hidden=32, max_steps=12, sizes=(8, 10, 12),
                         sampler_kwargs={"p": 0.3}, batch_size=16, steps=steps, lr=3e-3, seed=seed, progress=False)
    cache = s.out.parent / "cache" / f"bellman_ford_mpnn_{steps}_{seed}.pt"
    if cache.exists():
        ckpt = load_checkpoint(cache)
        if ckpt.train_config == config:
            print(f"reasoner loaded from {cache}")
            return ckpt.model
    start = time.perf_counter()
    model, history = train(config)
    model.eval()
    print(f"reasoner trained: {steps} steps in {time.perf_counter() - start:.0f} s, "
          f"loss {history[0]['loss']:.3f} -> {history[-1]['loss']:.3f}")
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(cache, model, "bellman_ford", config)
    return model
