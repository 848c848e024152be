"""User mistakes on the command line: one `hookgnn: error:` line naming the option and value, exit 2, before
any work; a trained model is never lost; real bugs keep their traceback."""

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hookgnn.training
from hookgnn.cli import main
from hookgnn.training import build_model, load_checkpoint, save_checkpoint

# small enough that a run that does start takes well under a second
TINY = ["--steps", "1", "--n", "5", "--d-hidden", "4", "--batch-size", "2", "--eval-graphs", "2", "--no-progress"]
ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread (tests/conftest.py)


@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if training starts."""
    def train(config):
        raise AssertionError("training started although an argument is bad")

    monkeypatch.setattr(hookgnn.training, "train", train)


def usage_error(argv, capsys) -> str:
    """Run the CLI; assert it exits with 2 after exactly one `hookgnn: error:` line; return that line."""
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("hookgnn: error: ")]
    assert len(errors) == 1 and errors[0] == err.splitlines()[-1], err
    assert "Traceback" not in err and "weights_only=False" not in err
    return errors[0]


@pytest.mark.parametrize("extra, expected", [
    (["--sizes", "a,b"], ["--sizes", "'a,b'"]),
    (["--sizes", "4,0"], ["--sizes 4,0", ">= 1"]),
    (["--n", "0"], ["--n", "'0'"]),
    (["--steps", "-5"], ["--steps -5", ">= 0"]),
    (["--steps", "abc"], ["--steps", "'abc'"]),
    (["--task", "bellman_frod"], ["--task bellman_frod", "did you mean 'bellman_ford'"]),
    (["--processor", "gcm"], ["--processor gcm", "gcn"]),
    (["--sampler", "smallworld"], ["--sampler smallworld", "erdos_renyi"]),
    (["--sampler-arg", "oops"], ["--sampler-arg", "KEY=VALUE", "'oops'"]),
    (["--sampler-arg", "q=1"], ["--sampler-arg q=1", "no argument 'q'"]),
    (["--sampler-arg", "n=9"], ["--sampler-arg n=9", "comes from sizes"]),
    (["--sampler", "path", "--p", "0.3"], ["--p 0.3", "no argument 'p'"]),
    (["--p", "1.5"], ["argument --p", "'1.5'", "in [0, 1]"]),
    (["--rounds", "0"], ["--rounds", "'0'"]),
    (["--rounds", "all"], ["--rounds", "'all'", "hints, nodes"]),
    (["--rounds", "99"], ["--rounds 99", "max_steps=64"]),
    (["--features", "distance"], ["--features distance", "no output or hint"]),
    (["--features", "pi_h", "--hint-weight", "0"], ["--features pi_h", "nothing would be trained"]),
    (["--lr", "-1"], ["--lr -1.0", "> 0"]),
    (["--lr", "nan"], ["--lr nan", "finite"]),
    (["--l1", "-1"], ["--l1 -1.0"]),
    (["--grad-clip", "inf"], ["--grad-clip inf"]),
    (["--hint-weight", "-0.5"], ["--hint-weight -0.5"]),
    (["--teacher-forcing", "2"], ["--teacher-forcing 2.0", "[0, 1]"]),
    (["--batch-size", "0"], ["--batch-size 0"]),
    (["--d-hidden", "0"], ["--d-hidden 0"]),
    (["--max-rounds", "0"], ["--max-rounds 0"]),
    (["--extra-rounds", "-1"], ["--extra-rounds -1"]),
    (["--seed", "-1"], ["--seed", "'-1'"]),
    (["--threads", "0"], ["--threads", "'0'"]),
    (["--eval-graphs", "-1"], ["--eval-graphs", "'-1'"]),
    (["--lr-schedule", "linear"], ["--lr-schedule", "'linear'"]),
    # found by drawing graphs before training: the task refuses them, or they need more rounds than max_steps
    (["--task", "dfs", "--max-rounds", "8"], ["--max-rounds 8", "needs 14 rounds"]),
    (["--task", "bridges", "--sampler-arg", "directed=True"], ["directed=True", "undirected"]),
    (["--task", "bellman_ford", "--sampler-arg", "weights=(-1.0, 0.0)"], ["weights=(-1.0, 0.0)", "non-negative"]),
    (["--sampler", "grid", "--sampler-arg", "cols='x'"], ["--sampler grid", "cols='x'"]),
])
def test_bad_train_argument_is_one_error_line_before_training(extra, expected, capsys, no_training):
    line = usage_error(["train", *TINY, *extra], capsys)
    for text in expected:
        assert text in line


def test_out_in_a_missing_folder_is_made_and_written(tmp_path, capsys):
    out = tmp_path / "runs" / "today" / "m.pt"
    main(["train", *TINY, "--out", str(out)])
    assert f"saved {out}" in capsys.readouterr().out
    assert load_checkpoint(out).task == "bfs"


@pytest.mark.parametrize("where", ["under_a_file", "a_folder", "empty"])
def test_unwritable_out_fails_before_training(where, tmp_path, capsys, no_training):
    (tmp_path / "file").write_text("x")
    out = {"under_a_file": str(tmp_path / "file" / "m.pt"), "a_folder": str(tmp_path), "empty": ""}[where]
    line = usage_error(["train", *TINY, "--out", out], capsys)
    assert line.startswith(f"hookgnn: error: argument --out {out}")


@pytest.mark.skipif(not hasattr(__import__("os"), "geteuid") or __import__("os").geteuid() == 0,
                    reason="root may write into read-only folders")
def test_out_in_a_read_only_folder_fails_before_training(tmp_path, capsys, no_training):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        line = usage_error(["train", *TINY, "--out", str(folder / "m.pt")], capsys)
    finally:
        folder.chmod(0o700)
    assert "cannot write into folder" in line


def test_a_save_that_fails_at_the_end_keeps_the_model_in_a_spare_file(tmp_path, capsys, monkeypatch):
    folder = tmp_path / "runs"
    real_train = hookgnn.training.train

    def train_then_lose_the_folder(config, **kwargs):
        result = real_train(config, **kwargs)
        folder.rmdir()
        folder.write_text("now a file")  # neither the folder nor a file beside --out can be written
        return result

    monkeypatch.setattr(hookgnn.training, "train", train_then_lose_the_folder)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        main(["train", *TINY, "--out", str(folder / "m.pt")])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hookgnn: error: could not write --out {folder / 'm.pt'}") and "\n" not in err
    spare = Path(err.rsplit("saved the trained model to ", 1)[1].removesuffix(" instead"))
    assert spare.parent == tmp_path and load_checkpoint(spare).task == "bfs"


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_a_run_stopped_mid_training_saves_the_model_trained_so_far(stop, tmp_path, capsys, monkeypatch):
    import hookgnn.training.loop as loop

    real = loop.sample_batch
    calls = []

    def stop_at_step_three(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise stop("stopped")
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "sample_batch", stop_at_step_three)
    out = tmp_path / "m.pt"
    with pytest.raises(stop):
        main(["train", *TINY, "--steps", "20", "--out", str(out)])
    assert "training stopped after 3 of 20 steps" in capsys.readouterr().err
    saved = load_checkpoint(out)
    assert saved.metrics == {"completed_steps": 3.0} and saved.task == "bfs"


def test_model_is_saved_when_the_final_evaluation_fails_and_the_bug_keeps_its_traceback(tmp_path, monkeypatch):
    def broken_evaluate(*args, **kwargs):
        raise RuntimeError("a bug in evaluate")

    monkeypatch.setattr(hookgnn.training, "evaluate_model", broken_evaluate)
    out = tmp_path / "m.pt"
    with pytest.raises(RuntimeError, match="a bug in evaluate"):
        main(["train", *TINY, "--out", str(out)])
    assert load_checkpoint(out).task == "bfs"


def test_unexpected_errors_are_not_turned_into_usage_errors(monkeypatch):
    def broken_train(config, **kwargs):
        raise ValueError("a bug, not a user mistake")

    monkeypatch.setattr(hookgnn.training, "train", broken_train)
    with pytest.raises(ValueError, match="a bug"):
        main(["train", *TINY])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A small untrained bfs checkpoint that runs at most 4 rounds."""
    path = tmp_path_factory.mktemp("ckpt") / "bfs.pt"
    save_checkpoint(path, build_model("bfs", d_hidden=4, max_steps=4), "bfs")
    return path


class Foo:
    pass


def _bad_files(root: Path) -> dict[str, Path]:
    good = root / "good.pt"
    save_checkpoint(good, build_model("bfs", d_hidden=4, max_steps=4), "bfs")
    files = {"missing": root / "missing.pt", "folder": root}
    for name, content in [("empty", b""), ("text", b"not a checkpoint\n"),
                          ("truncated", good.read_bytes()[: good.stat().st_size // 2]),
                          ("plain_pickle", pickle.dumps({"a": 1}))]:
        files[name] = root / f"{name}.pt"
        files[name].write_bytes(content)
    files["pickled_object"] = root / "object.pt"
    torch.save(Foo(), files["pickled_object"])
    files["state_dict"] = root / "state_dict.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), files["state_dict"])
    return files


@pytest.mark.parametrize("kind", ["missing", "folder", "empty", "text", "truncated", "plain_pickle",
                                  "pickled_object", "state_dict"])
def test_eval_of_a_bad_checkpoint_is_one_error_line(kind, tmp_path, capsys):
    path = _bad_files(tmp_path)[kind]
    line = usage_error(["eval", "--checkpoint", str(path), "--n", "5", "--num-graphs", "1"], capsys)
    assert line.startswith(f"hookgnn: error: argument --checkpoint {path}: ")


@pytest.mark.parametrize("extra, expected", [
    (["--n", "12", "--sampler", "weighted_path"], ["--n 12", "need 11 rounds", "max_steps=4"]),
    (["--rounds", "9"], ["--rounds 9", "max_steps=4"]),
    (["--num-graphs", "0"], ["--num-graphs", "'0'"]),
    (["--seed", "-2"], ["--seed", "'-2'"]),
    (["--sampler", "ring"], ["--sampler ring"]),
    (["--sampler-arg", "q=2"], ["--sampler-arg q=2"]),
    (["--p", "-0.5"], ["argument --p", "'-0.5'", "in [0, 1]"]),
])
def test_bad_eval_argument_is_one_error_line(extra, expected, checkpoint, capsys):
    line = usage_error(["eval", "--checkpoint", str(checkpoint), "--n", "4", "--num-graphs", "1", *extra], capsys)
    for text in expected:
        assert text in line


def test_eval_json_path_is_checked_before_evaluating(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(hookgnn.training, "evaluate_model", lambda *a, **k: pytest.fail("evaluated"))
    (tmp_path / "file").write_text("x")
    line = usage_error(["eval", "--checkpoint", str(checkpoint), "--n", "4", "--num-graphs", "1",
                        "--json", str(tmp_path / "file" / "m.json")], capsys)
    assert "--json" in line and "is a file" in line


def test_eval_json_folder_is_made(checkpoint, tmp_path):
    path = tmp_path / "new" / "m.json"
    main(["eval", "--checkpoint", str(checkpoint), "--n", "4", "--num-graphs", "1", "--json", str(path)])
    assert path.exists()


@pytest.mark.parametrize("argv, expected", [
    (["demo", "--train-steps", "0"], "--train-steps"),
    (["demo", "--seed", "-1"], "--seed"),
    (["tour", "--seed", "-1"], "--seed"),
    (["frobnicate"], "invalid choice"),
])
def test_demo_and_tour_arguments_are_checked(argv, expected, capsys):
    assert expected in usage_error(argv, capsys)


def test_demo_out_under_a_file_fails_before_the_demo_runs(tmp_path, capsys, monkeypatch):
    import hookgnn.cli.demo

    monkeypatch.setattr(hookgnn.cli.demo, "run_demo", lambda *a, **k: pytest.fail("the demo ran"))
    (tmp_path / "file").write_text("x")
    line = usage_error(["demo", "--out", str(tmp_path / "file" / "figs")], capsys)
    assert "--out" in line and "is a file" in line


def _cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hookgnn.cli", *argv], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)


def test_the_installed_command_prints_one_line_and_no_traceback():
    done = _cli("train", "--steps", "-5")
    assert done.returncode == 2
    assert done.stderr == "hookgnn: error: argument --steps -5: must be an integer >= 0\n"
    assert done.stdout == ""


def test_a_refused_pickle_never_suggests_weights_only_false(tmp_path):
    path = tmp_path / "object.pt"
    torch.save({"f": Path("x")}, path)  # a pickled object that weights-only loading refuses
    done = _cli("eval", "--checkpoint", str(path))
    assert done.returncode == 2
    assert done.stderr.startswith(f"hookgnn: error: argument --checkpoint {path}: it holds a pickled Python object")
    assert done.stderr.count("\n") == 1 and "weights_only=False" not in done.stderr
