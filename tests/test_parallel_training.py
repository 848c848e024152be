"""Training on two processes (gloo, DistributedDataParallel) equals training on one with the same global batch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from hookgnn.graph import Graph
from hookgnn.metrics.per_graph import pointer_log_probs
from hookgnn.parallel import World
from hookgnn.parallel.training import global_loss, rank_batch
from hookgnn.tasks import get_task
from hookgnn.training import build_model, load_checkpoint, loss_sums, sample_batch, task_loss
from parallel_workers import free_port, train_job

#: Graphs of several sizes (so the two halves of a batch hold different numbers of items), hints,
#: teacher forcing, untied rounds whose count varies from step to step (unused rounds' weights get no
#: gradient) and an L1 penalty: every part of a step that could tell 2 processes from 1.
CONFIG: dict[str, Any] = dict(task="bfs", processor="mpnn", d_hidden=8, max_steps=6, tie_weights=False,
                              encode_hints=True, teacher_forcing=0.5, sizes=(3, 5, 6), same_size=True, batch_size=5,
                              steps=4, l1=1e-3, sampler_kwargs={"p": 0.5}, seed=3, progress=False)


@pytest.fixture(scope="module")
def one_and_two() -> tuple[Any, list[tuple[str, Any]]]:
    import parallel_workers

    ranks, _ = parallel_workers.two_ranks()  # one start of 2 processes for all distributed tests
    return train_job(CONFIG), [(status, value["train"] if status == "ok" else value) for status, value in ranks]


def test_two_processes_train_like_one_with_the_same_global_batch(one_and_two: tuple[Any, Any]) -> None:
    (history, weights), ranks = one_and_two
    assert len({r["rounds"] for r in history}) > 1  # rounds varied: some rounds' weights unused in some steps
    for status, value in ranks:
        assert status == "ok", value
        got_history, got_weights = value
        assert [r["rounds"] for r in got_history] == [r["rounds"] for r in history]
        for got, want in zip(got_history, history):
            assert got.keys() == want.keys()
            for key in want:
                assert got[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), key
        assert_same_reasoner(got_weights, weights)


def assert_same_reasoner(got: dict[str, torch.Tensor], want: dict[str, torch.Tensor], tied: bool = False,
                         encode_hints: bool = True) -> None:
    """Equal weights (to float tolerance), except pointer decoders', which are compared through the
    function the weights compute on fresh graphs."""
    # Adam divides by sqrt(v) + 1e-8, so an entry whose gradient is at rounding level (1e-8) moves by
    # a rounding-dependent fraction of lr: most entries agree to float precision, none by more than lr / 2
    lr, close, total = float(CONFIG.get("lr", 1e-3)), 0, 0
    for name, w in want.items():
        if not _pointer_decoder(name):
            torch.testing.assert_close(got[name], w, rtol=1e-5, atol=lr / 2, msg=name)
            close += int(((got[name] - w).abs() <= 1e-6 + 1e-5 * w.abs()).sum())
            total += w.numel()
    assert close >= 0.9 * total, f"only {close} of {total} weights agree to float precision"
    task = get_task("bfs")
    graphs = sample_batch(task, 4, "erdos_renyi", (6,), seed=(9, 9), sampler_kwargs={"p": 0.5})
    outs = []
    for state in (want, got):
        net = build_model(task, "mpnn", 8, 6, tied, encode_hints, None, True)
        net.load_state_dict(state)
        with torch.no_grad():
            outs.append(net.eval()(graphs, steps=5))
    torch.testing.assert_close(pointer_log_probs(outs[1]["pi"], graphs), pointer_log_probs(outs[0]["pi"], graphs),
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(outs[1]["reach"], outs[0]["reach"], rtol=1e-4, atol=1e-5)


def _pointer_decoder(name: str) -> bool:
    """Weights of pointer decoders. Their logits enter a softmax over each node's incoming edges, which
    ignores whatever adds the same amount to all of them (biases; the receiver's term; edge features
    that are all ones in BFS), so much of their gradient is 0 up to rounding, and Adam's normalised
    step turns rounding into steps of about the learning rate. They are compared through the function."""
    return name.split(".")[0] in ("decoders", "hint_decoders") and name.split(".")[1] in ("pi", "pi_h")


def test_the_ranks_hold_the_same_model(one_and_two: tuple[Any, Any]) -> None:
    _, ((_, (_, w0)), (_, (_, w1))) = one_and_two
    for name in w0:
        assert torch.equal(w0[name], w1[name]), name


def test_rank_shares_cover_the_batch_and_the_loss_is_the_whole_batch_mean() -> None:
    task = get_task("bfs")
    batch = sample_batch(task, 5, "erdos_renyi", (3, 6), seed=(0, 1), sampler_kwargs={"p": 0.5})
    shares = [rank_batch(batch, World(r, 2)) for r in range(2)]
    assert [s.num_graphs for s in shares] == [2, 3]
    union = Graph.collate(shares)
    for name in ("x", "edge_index"):
        assert torch.equal(getattr(union, name), getattr(batch, name))
    net = build_model(task, "mpnn", 8, 6, True, False, None, True)
    whole, parts = task_loss(net(batch, steps=5), batch, task.spec)
    # Adding the two shares' loss sums and counts by hand gives the one-process parts.
    terms = [loss_sums(net(s, steps=5), s, task.spec) for s in shares]
    for key, value in parts.items():
        total = sum(float(t[key][1].detach()) for t in terms)
        count = sum(float(t[key][2]) for t in terms)
        assert total / max(count, 1.0) == pytest.approx(value, rel=1e-5)
    loss, got = global_loss(loss_sums(net(batch, steps=5), batch, task.spec), World())
    assert float(loss.detach()) == pytest.approx(float(whole.detach()), rel=1e-5)
    assert got == pytest.approx(parts, rel=1e-5)


def test_batch_smaller_than_the_world_is_refused() -> None:
    with pytest.raises(ValueError, match="batch_size >= 2"):
        rank_batch(sample_batch(get_task("bfs"), 1, "path", (4,), seed=0), World(0, 2))  # rank 0 would get none


#: ``hookgnn train`` arguments of the CLI tests (--sizes, not --n: torchrun's parser would take --n for
#: an abbreviation of its own --nnodes / --nproc-per-node).
TRAIN_ARGS = ["train", "--task", "bfs", "--d-hidden", "8", "--max-steps", "6", "--sizes", "5", "--p", "0.5",
              "--batch-size", "4", "--steps", "3", "--eval-graphs", "0", "--no-progress", "--seed", "1"]


def test_hookgnn_train_on_two_ranks_saves_on_rank_0_only(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from hookgnn.cli import main

    import parallel_workers

    main([*TRAIN_ARGS, "--out", str(tmp_path / "one.pt")])
    ((s0, e0), (s1, e1)), folder = parallel_workers.two_ranks()  # the CLI ran last, writing folder/two/m.pt
    assert s0 == s1 == "ok", (e0, e1)
    assert sorted(p.name for p in (folder / "two").iterdir()) == ["m.pt"]  # no spare or temporary files
    a, b = load_checkpoint(tmp_path / "one.pt"), load_checkpoint(folder / "two" / "m.pt")
    assert b.train_config == a.train_config
    assert_same_reasoner(b.model.state_dict(), a.model.state_dict(), tied=True, encode_hints=False)


@pytest.mark.slow
def test_hookgnn_train_under_torchrun_saves_once_and_matches_one_process(tmp_path: Path) -> None:
    one = subprocess.run([sys.executable, "-m", "hookgnn.cli", *TRAIN_ARGS, "--out", str(tmp_path / "one.pt")],
                         capture_output=True, text=True, timeout=300, env=_env())
    assert one.returncode == 0, one.stderr
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
                          "-m", "hookgnn.cli", *TRAIN_ARGS, "--out", str(tmp_path / "two.pt")],
                         capture_output=True, text=True, timeout=300, env=_env())
    assert two.returncode == 0, two.stderr
    assert two.stdout.count("saved") == 1  # rank 0 only
    a, b = load_checkpoint(tmp_path / "one.pt"), load_checkpoint(tmp_path / "two.pt")
    assert_same_reasoner(b.model.state_dict(), a.model.state_dict(), tied=True, encode_hints=False)


def _env() -> dict[str, str]:
    import os

    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])
    return env
