"""The command line: train and eval run in-process, --help explains every subcommand.

Bad arguments are in tests/test_cli_errors.py.
"""

import json

import pytest
import torch

from hookgnn.cli import main


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread (tests/conftest.py)


def test_train_then_eval_writes_a_checkpoint_and_prints_metrics(tmp_path, capsys):
    ckpt = tmp_path / "bfs.pt"
    main(["train", "--task", "bfs", "--steps", "5", "--n", "6", "--p", "0.4", "--d-hidden", "8",
          "--batch-size", "4", "--max-rounds", "16", "--eval-graphs", "4", "--no-progress", "--out", str(ckpt)])
    out = capsys.readouterr().out
    assert "pi.accuracy" in out and f"saved {ckpt}" in out
    assert torch.load(ckpt, weights_only=True)["model"]["task"] == "bfs"

    metrics_path = tmp_path / "m.json"
    main(["eval", "--checkpoint", str(ckpt), "--n", "12", "--p", "0.3", "--num-graphs", "3",
          "--json", str(metrics_path)])
    out = capsys.readouterr().out
    assert "bfs: 3 erdos_renyi graphs, n=12" in out and "reach.f1" in out
    metrics = json.loads(metrics_path.read_text())
    assert 0.0 <= metrics["pi.accuracy"] <= 1.0


def test_train_accepts_sampler_args_features_and_size_lists(tmp_path, capsys):
    main(["train", "--task", "bellman_ford", "--processor", "minagg", "--sampler", "weighted_path",
          "--sizes", "3,5", "--same-size", "--rounds", "nodes", "--features", "d", "--hint-weight", "0",
          "--sampler-arg", "weights=(0.0,2.0)", "--l1", "1e-4", "--steps", "3", "--d-hidden", "4",
          "--batch-size", "2", "--eval-graphs", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert "d.mse" in out and "pi.accuracy" not in out


def test_eval_on_multi_path_uses_k_as_the_size(tmp_path, capsys):
    ckpt = tmp_path / "bf.pt"
    main(["train", "--task", "bellman_ford", "--steps", "1", "--n", "5", "--d-hidden", "4", "--batch-size", "2",
          "--eval-graphs", "0", "--no-progress", "--out", str(ckpt)])
    main(["eval", "--checkpoint", str(ckpt), "--sampler", "multi_path", "--n", "4", "--num-graphs", "1",
          "--rounds", "nodes"])
    assert "multi_path graphs, n=4" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["train", "eval", "tour"])
def test_help_describes_each_subcommand(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "--seed" in text
    if command != "tour":
        assert "examples:" in text and "default" in text


def test_top_level_help_lists_train_and_eval(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "train" in text and "eval" in text and "tour" in text
