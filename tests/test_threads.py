"""Threads chosen by workload (hookgnn.ops.threads): one for small jobs, an explicit choice
always wins, torch's setting always restored; results do not depend on the thread count."""

from __future__ import annotations

import copy

import pytest
import torch

import hookgnn.cli.demo
import hookgnn.training.loop as loop
from hookgnn.cli import main
from hookgnn.ops import compiled, scatter_max, use_backend
from hookgnn.ops.threads import SMALL_WORK, auto_threads, explicit_threads, pick_threads, use_threads
from hookgnn.training import TrainConfig, build_model, save_checkpoint, train

TINY = ["--steps", "2", "--n", "5", "--d-hidden", "4", "--batch-size", "2", "--eval-graphs", "0", "--no-progress"]


@pytest.fixture
def step_threads(monkeypatch):
    """Records torch.get_num_threads() at every training step's loss."""
    seen: list[int] = []
    real = loop.task_loss

    def recording(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "task_loss", recording)
    return seen


def small_config(**kwargs) -> TrainConfig:
    return TrainConfig(**{"task": "bfs", "d_hidden": 8, "max_steps": 8, "sizes": (5,), "batch_size": 2, "steps": 2,
                          "sampler_kwargs": {"p": 0.5}, "progress": False, **kwargs})


def test_small_work_runs_on_one_thread_and_large_work_on_torchs_setting(two_threads):
    with auto_threads(SMALL_WORK - 1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with auto_threads(SMALL_WORK) as n:
        assert n == 2 and torch.get_num_threads() == 2


def test_omp_num_threads_in_the_environment_is_a_choice_the_policy_keeps(two_threads, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert pick_threads(10) == 2


@pytest.mark.parametrize("context", [lambda: auto_threads(10), lambda: auto_threads(10**9, threads=1),
                                     lambda: use_threads(1)])
def test_previous_thread_count_is_restored_when_the_body_raises(context, two_threads):
    with pytest.raises(RuntimeError, match="boom"), context():
        assert torch.get_num_threads() == 1
        raise RuntimeError("boom")
    assert torch.get_num_threads() == 2 and explicit_threads() is None


def test_an_explicit_choice_wins_over_the_workload_of_every_job_inside(two_threads):
    with use_threads(2):
        assert explicit_threads() == 2
        with auto_threads(10) as n:  # small work, but the user said 2
            assert n == 2 and torch.get_num_threads() == 2
        with auto_threads(10, threads=1) as n:  # the innermost explicit choice wins
            assert n == 1 and pick_threads(10) == 1
        assert torch.get_num_threads() == 2
    assert explicit_threads() is None


@pytest.mark.parametrize("bad", [0, -1])
def test_bad_thread_counts_are_refused_with_the_argument_named(bad):
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        with use_threads(bad):
            pass
    with pytest.raises(ValueError, match="threads must be an integer >= 1"):
        train(small_config(), threads=bad)


def test_train_runs_small_batches_on_one_thread_and_restores_torchs_setting(two_threads, step_threads):
    train(small_config())
    assert step_threads == [1, 1] and torch.get_num_threads() == 2


def test_train_with_explicit_threads_runs_on_them(two_threads, step_threads):
    torch.set_num_threads(1)
    train(small_config(), threads=2)
    assert step_threads == [2, 2] and torch.get_num_threads() == 1


def test_train_restores_torchs_setting_when_a_step_raises(two_threads, monkeypatch):
    def broken(*args, **kwargs):
        assert torch.get_num_threads() == 1
        raise RuntimeError("a step failed")

    monkeypatch.setattr(loop, "task_loss", broken)
    with pytest.raises(RuntimeError, match="a step failed"):
        train(small_config())
    assert torch.get_num_threads() == 2


def test_a_training_step_gives_identical_weights_on_one_and_two_threads():
    """Large enough that the compiled kernel splits its work between 2 threads."""
    config = small_config(d_hidden=64, sizes=(16,), batch_size=16, steps=2, processor="mpnn")
    models = {}
    for n in (1, 2):
        model, history = train(config, threads=n)
        models[n] = (copy.deepcopy(model.state_dict()), [h["loss"] for h in history])
    assert models[1][1] == models[2][1]
    assert all(torch.equal(models[1][0][k], models[2][0][k]) for k in models[1][0])


def test_the_kernel_keeps_one_thread_below_two_grains_of_work():
    """A region for 2 threads only pays for at least 2 grains of 2^15 elements each."""
    kernel = compiled.load()
    if kernel is None or not compiled.has_openmp():
        pytest.skip("no OpenMP kernel here")
    torch.manual_seed(0)
    for num_edges, expected in ((2_000, 1), (8_000, 2)):  # (E + N) * C = 42K, 162K elements at C = 20
        src, index = torch.randn(num_edges, 20), torch.randint(0, 100, (num_edges,))
        with use_threads(2), use_backend("compiled"):  # this kernel, also under HOOKGNN_SCATTER_BACKEND=torch
            scatter_max(src, index, 100)
        assert kernel.last_threads() == expected


# ------------------------------------------------------------------ command line
def usage_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("hookgnn: error: ") and not any("Traceback" in line for line in err)
    return err[-1]


@pytest.mark.parametrize("command", [["train", *TINY], ["demo"], ["eval", "--checkpoint", "x.pt"],
                                     ["metamer", "--checkpoint", "x.pt", "--hook", "layers.0.hook_update"]])
@pytest.mark.parametrize("value", ["0", "x", "-2"])
def test_bad_threads_option_is_one_error_line(command, value, capsys):
    line = usage_error([*command, "--threads", value], capsys)
    assert "--threads" in line and f"'{value}'" in line and ">= 1" in line


def test_train_threads_option_wins_and_does_not_leak(two_threads, step_threads, capsys):
    torch.set_num_threads(1)
    main(["train", *TINY, "--threads", "2"])
    assert step_threads == [2, 2] and torch.get_num_threads() == 1
    main(["train", *TINY])
    assert step_threads[2:] == [1, 1] and torch.get_num_threads() == 1


def test_demo_threads_option_reaches_the_demo(monkeypatch, tmp_path):
    got = {}
    monkeypatch.setattr(hookgnn.cli.demo, "run_demo", lambda out, threads, **kw: got.update(threads=threads))
    main(["demo", "--out", str(tmp_path), "--threads", "2"])
    assert got == {"threads": 2}


def test_eval_and_metamer_threads_option_wins_and_does_not_leak(two_threads, tmp_path, monkeypatch, capsys):
    import hookgnn.metamers
    import hookgnn.training

    path = tmp_path / "bfs.pt"
    save_checkpoint(path, build_model("bfs", d_hidden=4, max_steps=8), "bfs")
    seen = []
    real_eval, real_metamer = hookgnn.training.evaluate_model, hookgnn.metamers.metamer

    def evaluate_model(*args, **kwargs):
        seen.append(("eval", torch.get_num_threads()))
        return real_eval(*args, **kwargs)

    def metamer(*args, **kwargs):
        seen.append(("metamer", torch.get_num_threads()))
        return real_metamer(*args, **kwargs)

    monkeypatch.setattr(hookgnn.training, "evaluate_model", evaluate_model)
    monkeypatch.setattr(hookgnn.metamers, "metamer", metamer)
    for threads in ("1", "2"):
        torch.set_num_threads(3 - int(threads))
        main(["eval", "--checkpoint", str(path), "--n", "5", "--num-graphs", "2", "--threads", threads])
        main(["metamer", "--checkpoint", str(path), "--hook", "layers.0.hook_update", "--n", "5", "--num", "1",
              "--max-steps", "2", "--restarts", "0", "--no-progress", "--out", str(tmp_path / "m"),
              "--threads", threads])
        assert torch.get_num_threads() == 3 - int(threads)
    # the metamer's one-step dry run checks the arguments on torch's setting; the search runs on --threads
    assert seen == [("eval", 1), ("metamer", 2), ("metamer", 1), ("eval", 2), ("metamer", 1), ("metamer", 2)]


def test_demo_says_that_the_one_time_kernel_build_runs_and_how_long_it_took(monkeypatch, capsys):
    monkeypatch.delenv("HOOKGNN_SCATTER_BACKEND", raising=False)  # the demo builds the kernel where it will use it
    monkeypatch.setattr(compiled, "is_built", lambda: False)
    monkeypatch.setattr(compiled, "load", lambda: object())
    hookgnn.cli.demo.build_kernel()
    said = capsys.readouterr()
    assert "building the compiled scatter max/min kernel" in said.err and "built in" in said.err
    assert said.out == ""  # stderr: the demo's stdout is the same on every machine
    monkeypatch.setattr(compiled, "is_built", lambda: True)
    hookgnn.cli.demo.build_kernel()
    assert capsys.readouterr() == ("", "")


def _env_after(code: str, name: str, value: str | None) -> str:
    """The environment variable ``name`` after running ``code`` in a fresh process started with it set
    to ``value`` (``None``: unset)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != name}
    if value is not None:
        env[name] = value
    run = subprocess.run([sys.executable, "-c", code + f"; import os; print(os.environ.get({name!r}))"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip().splitlines()[-1]


def test_importing_hookgnn_first_makes_openmp_threads_wait_passively_unless_the_user_chose():
    assert _env_after("import hookgnn", "OMP_WAIT_POLICY", None) == "PASSIVE"
    assert _env_after("import hookgnn", "OMP_WAIT_POLICY", "active") == "active"  # the user's choice wins
    assert _env_after("import torch, hookgnn", "OMP_WAIT_POLICY", None) == "None"  # torch has loaded libgomp


def test_importing_hookgnn_first_backs_large_buffers_with_huge_pages_unless_the_user_chose():
    """torch reads THP_MEM_ALLOC_ENABLE once, at its first allocation: set before torch loads, or not at all."""
    assert _env_after("import hookgnn", "THP_MEM_ALLOC_ENABLE", None) == "1"
    assert _env_after("import hookgnn", "THP_MEM_ALLOC_ENABLE", "0") == "0"  # the user's choice wins
    assert _env_after("import torch, hookgnn", "THP_MEM_ALLOC_ENABLE", None) == "None"


def test_patching_attribution_and_circuit_entry_points_run_small_graphs_on_one_thread_and_restore(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # a user's OMP_NUM_THREADS means: use torch's setting
    from hookgnn import Graph, HookedGNN
    from hookgnn.attribution import atp_star, attribute, eap
    from hookgnn.circuits import audit, evaluate, verify
    from hookgnn.metrics import OutputSum
    from hookgnn.patching import nodes, patch, patch_each, path_patch
    from hookgnn.spec import FeatureSpec

    torch.manual_seed(0)
    model = HookedGNN("mpnn", 8, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=2)
    g = Graph(x=torch.randn(4, 1), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]))
    seen: list[int] = []
    model.add_hook("layers.0.hook_update", lambda t, hook: seen.append(torch.get_num_threads()), is_permanent=True)
    corr, metric = g.replace(x=torch.randn(4, 1)), OutputSum("d")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for run in (lambda: patch(model, g, corr, metric, nodes(model)), lambda: attribute(model, g, corr, metric),
                    lambda: eap(model, g, corr, metric), lambda: atp_star(model, g, corr, metric)):
            seen.clear()
            run()
            assert seen and set(seen) == {1}
            assert torch.get_num_threads() == 2
        with use_threads(2):  # an explicit choice wins
            seen.clear()
            patch(model, g, corr, metric, nodes(model))
            assert set(seen) == {2}
    finally:
        model.reset_hooks(including_permanent=True)
        torch.set_num_threads(before)
    assert all(callable(f) and hasattr(f, "__wrapped__") for f in (patch_each, path_patch, evaluate, verify, audit))
