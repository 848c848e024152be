"""What a new user of the command line meets first: one line per syntax error, options named for what they
mean, ``--version``, a ``--help`` that answers without importing torch, help that lists the tasks, and a
progress bar only on a terminal."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hookgnn
from hookgnn.cli import main
from hookgnn.tasks import TASKS
from hookgnn.training import build_model, save_checkpoint

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--steps", "1", "--n", "5", "--d-hidden", "4", "--batch-size", "2", "--eval-graphs", "2", "--no-progress"]

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread (tests/conftest.py)


def _stderr_of_usage_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("argv, option, value", [
    (["train", "--steps", "abc"], "--steps", "'abc'"),
    (["train", "--rounds", "many"], "--rounds", "'many'"),
    (["train", "--n", "0"], "--n", "'0'"),
    (["train", "--sizes", "4,x"], "--sizes", "'4,x'"),
    (["eval", "--checkpoint", "m.pt", "--num-graphs", "x"], "--num-graphs", "'x'"),
    (["demo", "--threads", "0"], "--threads", "'0'"),
])
def test_a_syntax_error_is_one_line_without_the_usage_block(argv, option, value, capsys):
    err = _stderr_of_usage_error(argv, capsys)
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"hookgnn: error: argument {option}: ") and value in err
    assert f"`hookgnn {argv[0]} --help`" in err and "usage:" not in err


def test_a_probability_out_of_range_names_p_not_the_sampler(capsys):
    err = _stderr_of_usage_error(["train", *TINY, "--p", "1.5"], capsys)
    assert err.startswith("hookgnn: error: argument --p: must be a number in [0, 1], got '1.5'")
    assert "--sampler" not in err and len(err.splitlines()) == 1


def test_train_max_rounds_is_the_round_limit_and_max_steps_its_old_spelling_that_warns(capsys, monkeypatch):
    seen = []
    monkeypatch.setattr(hookgnn.training, "train", lambda config, **kw: seen.append(config) or pytest.skip())

    def config_of(argv):
        seen.clear()
        with pytest.raises(pytest.skip.Exception):
            main(["train", *TINY, *argv])
        return seen[0], capsys.readouterr().err

    new, err_new = config_of(["--max-rounds", "12"])
    old, err_old = config_of(["--max-steps", "12"])
    assert new.max_steps == old.max_steps == 12 and new.steps == old.steps == 1  # rounds, not optimiser steps
    assert err_new == ""
    assert err_old.startswith("hookgnn: warning: --max-steps of `hookgnn train` is deprecated: use --max-rounds")
    help_text = _help(["train", "--help"], capsys)
    assert "--max-rounds" in help_text and "--max-steps" not in help_text
    assert "optimiser steps at most" in _help(["metamer", "--help"], capsys)  # metamer's --max-steps: steps


def _help(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_version_prints_the_package_version(capsys):
    assert _help(["--version"], capsys) == f"hookgnn {hookgnn.__version__}\n"


def test_train_help_lists_every_task_and_processor(capsys):
    text = " ".join(_help(["train", "--help"], capsys).split())
    assert "hookgnn.tasks.TASKS" not in text
    for name in [*TASKS, *hookgnn.PROCESSORS]:
        assert name in text, name


@pytest.mark.parametrize("how", ["console_script", "python_m"])
def test_help_and_version_import_no_torch(how):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    check = ("import sys\nsys.argv[:] = ['hookgnn', *sys.argv[1:]]\nfrom hookgnn.cli import main\n"
             "try:\n    main(sys.argv[1:])\nfinally:\n    print('torch imported:', 'torch' in sys.modules)\n")
    for argv in (["--help"], ["--version"], ["train", "--steps", "abc"]):
        if how == "console_script":  # what the installed `hookgnn` script runs: sys.argv[0] is its path
            cmd = [sys.executable, "-c", check, *argv]
        else:
            cmd = [sys.executable, "-X", "importtime", "-m", "hookgnn.cli", *argv]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
        assert done.returncode == (2 if "abc" in argv else 0), done.stderr[-2000:]
        if how == "console_script":
            assert "torch imported: False" in done.stdout
        else:
            imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line]
            assert "hookgnn.cli" in imported and "torch" not in imported


def test_metamer_draws_its_progress_bar_only_on_a_terminal(tmp_path, capsys, monkeypatch):
    path = tmp_path / "bfs.pt"
    torch.manual_seed(0)
    save_checkpoint(path, build_model("bfs", d_hidden=4, max_steps=8), "bfs")
    argv = ["metamer", "--checkpoint", str(path), "--hook", "layers.0.hook_update", "--n", "5", "--num", "1",
            "--max-steps", "3", "--restarts", "0", "--tol", "1e-12", "--out", str(tmp_path / "m")]
    monkeypatch.delenv("CI", raising=False)
    main(argv)
    assert "metamer:" not in capsys.readouterr().err  # captured stderr is not a terminal
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    main(argv)
    assert "metamer:" in capsys.readouterr().err


@pytest.mark.parametrize("option", [["--seed", "3"], ["--train-steps", "50"]])
def test_demo_training_options_need_train(option, capsys, monkeypatch):
    import hookgnn.cli.demo

    monkeypatch.setattr(hookgnn.cli.demo, "run_demo", lambda *a, **k: pytest.fail("the demo ran"))
    err = _stderr_of_usage_error(["demo", *option], capsys)
    assert err == f"hookgnn: error: argument {option[0]} {option[1]}: applies only with --train (the reference " \
                  "checkpoint is trained already: seed 0, 400 steps)\n"
