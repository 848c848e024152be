"""Training loop, evaluation metrics and checkpoints."""

import pytest
import torch

from hookgnn.tasks import get_task
from hookgnn.training import (
    TrainConfig,
    build_model,
    evaluate_model,
    feature_metrics,
    l1_penalty,
    load_checkpoint,
    num_rounds,
    save_checkpoint,
    train,
)

TINY = dict(task="bfs", d_hidden=16, max_steps=12, sizes=(6,), sampler_kwargs={"p": 0.4}, batch_size=8,
            steps=30, lr=3e-3, progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread (tests/conftest.py)


@pytest.fixture(scope="module")
def trained(one_thread):
    return train(TrainConfig(**TINY))


def test_tiny_bfs_training_reduces_the_loss(trained):
    _, history = trained
    first = sum(r["loss"] for r in history[:5]) / 5
    last = sum(r["loss"] for r in history[-5:]) / 5
    assert last < 0.8 * first


def test_same_seed_gives_identical_losses_and_other_seed_does_not(trained):
    _, history = trained
    again = train(TrainConfig(**TINY))[1]
    assert [r["loss"] for r in again] == [r["loss"] for r in history]
    other = train(TrainConfig(**{**TINY, "seed": 1, "steps": 3}))[1]
    assert [r["loss"] for r in other] != [r["loss"] for r in history[:3]]


def test_training_leaves_the_global_torch_rng_alone():
    state = torch.random.get_rng_state()
    train(TrainConfig(**{**TINY, "steps": 1}))
    assert torch.equal(state, torch.random.get_rng_state())


def test_training_with_encoded_hints_and_teacher_forcing_runs():
    cfg = TrainConfig(**{**TINY, "task": "bellman_ford", "steps": 4, "encode_hints": True,
                         "teacher_forcing": 1.0, "teacher_forcing_end": 0.0, "extra_rounds": 2, "l1": 1e-3})
    model, history = train(cfg)
    assert [r["teacher_forcing"] for r in history][0] == 1.0 and history[-1]["teacher_forcing"] == 0.0
    assert model.encode_hints and history[-1]["l1"] > 0


def test_checkpoint_loads_with_weights_only_and_reproduces_outputs(trained, tmp_path):
    model, _ = trained
    path = tmp_path / "bfs.pt"
    cfg = TrainConfig(**TINY)
    save_checkpoint(path, model, "bfs", cfg, {"pi.accuracy": 0.5})
    raw = torch.load(path, weights_only=True)
    assert raw["model"]["spec"]["pi"] == {"stage": "output", "location": "node", "type": "pointer", "dim": 1}
    loaded = load_checkpoint(path)
    assert loaded.task == "bfs" and loaded.train_config == cfg and loaded.metrics == {"pi.accuracy": 0.5}
    g = get_task("bfs").sample(4, "erdos_renyi", seed=5, n=9, p=0.3)
    a, b = model(g, steps=5), loaded.model(g, steps=5)
    for name in a.outputs:
        assert torch.equal(a[name], b[name])
    for name in a.hints:
        assert torch.equal(a.hints[name], b.hints[name])


def test_load_checkpoint_rejects_other_files(tmp_path):
    path = tmp_path / "x.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match="not a hookgnn checkpoint"):
        load_checkpoint(path)


def test_evaluate_pointer_and_mask_accuracy_match_brute_force(trained):
    model, _ = trained
    task = get_task("bfs")
    g = task.sample(5, "erdos_renyi", seed=7, n=10, p=0.25)
    metrics = evaluate_model(model, task, g)
    with torch.no_grad():
        out = model(g, steps=num_rounds(g, "hints"))
    src, dst = g.edge_index
    right = 0
    for v in range(g.num_nodes):
        incoming = (dst == v).nonzero().flatten()
        predicted = int(src[incoming[int(out["pi"][incoming].argmax())]])
        true = int(src[incoming[int(g["pi"][incoming].argmax())]])
        right += predicted == true
    assert metrics["pi.accuracy"] == pytest.approx(right / g.num_nodes)
    reach_right = ((out["reach"] > 0).float() == g["reach"]).float().mean()
    assert metrics["reach.accuracy"] == pytest.approx(float(reach_right))
    assert metrics["rounds"] == num_rounds(g, "hints")


def test_mask_f1_and_graph_accuracy_by_hand():
    g = get_task("bfs").sample(2, "path", seed=0, n=2)  # nodes 0, 1 | 2, 3
    from hookgnn.spec import FeatureSpec

    pred = torch.tensor([5.0, -5.0, 5.0, 5.0])  # predicted 1 0 1 1
    target = torch.tensor([1.0, 1.0, 1.0, 1.0])
    m = feature_metrics(FeatureSpec("output", "node", "mask"), pred, target, g)
    assert m == {"accuracy": 0.75, "f1": pytest.approx(2 * 3 / (2 * 3 + 0 + 1)), "graph_accuracy": 0.5}


def test_num_rounds_beyond_max_steps_names_the_fix():
    g = get_task("bfs").sample(1, "weighted_path", seed=0, n=20)
    with pytest.raises(ValueError, match="max_steps"):
        num_rounds(g, "hints", max_steps=8)


def test_l1_penalty_counts_tied_weights_once():
    tied = build_model("bfs", d_hidden=4, max_steps=5, tie_weights=True)
    one_round = build_model("bfs", d_hidden=4, max_steps=1, tie_weights=True)
    one_round.load_state_dict({k: v for k, v in tied.state_dict().items() if k in one_round.state_dict()})
    torch.testing.assert_close(l1_penalty(tied), l1_penalty(one_round))


def test_unknown_feature_names_are_reported_before_training():
    with pytest.raises(ValueError, match="features=.*no output or hint"):
        TrainConfig(**{**TINY, "features": ("distance",), "steps": 1})
