"""Checkpoints: every bad file gives one error naming the file and the problem; saving never leaves half a file."""

import os
import pickle
import traceback
from pathlib import Path

import numpy as np
import pytest
import torch

import hookgnn.training.checkpoint as checkpoint_module
from hookgnn.training import (
    CheckpointError,
    TrainConfig,
    build_model,
    checkpoint_dict,
    load_checkpoint,
    save_checkpoint,
)


def model():
    return build_model("bfs", d_hidden=4, max_steps=3)


def config():
    return TrainConfig(task="bfs", d_hidden=4, max_steps=3, sizes=(3,), steps=1, batch_size=2)


def full_text(err: BaseException) -> str:
    """Everything Python would print for ``err``: message, causes and context included."""
    return "".join(traceback.format_exception(type(err), err, err.__traceback__))


class Foo:
    pass


def write_bad(path: Path, kind: str) -> None:
    good = path.with_name("good.pt")
    save_checkpoint(good, model(), "bfs")
    data = good.read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "corrupt":  # zeros over the pickled part of a complete archive
        path.write_bytes(data[:100] + bytes(50) + data[150:])
    elif kind == "text":
        path.write_text("model = 'not really'\n")
    elif kind == "plain_pickle":
        path.write_bytes(pickle.dumps({"state_dict": {}}))
    elif kind == "pickled_object":
        torch.save({"config": Foo()}, path)
    elif kind == "numpy_array":
        torch.save({"x": np.zeros(3)}, path)
    elif kind == "state_dict":
        torch.save(model().state_dict(), path)
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "other_dict":
        torch.save({"epoch": 3, "weights": [1.0]}, path)


KINDS = ["empty", "truncated", "corrupt", "text", "plain_pickle", "pickled_object", "numpy_array", "state_dict",
         "tensor", "other_dict"]


@pytest.mark.parametrize("kind", KINDS)
def test_a_foreign_or_broken_file_raises_one_checkpoint_error_naming_it(kind, tmp_path):
    path = tmp_path / f"{kind}.pt"
    write_bad(path, kind)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    err = info.value
    assert isinstance(err, ValueError) and err.path == str(path) and str(path) in str(err)
    text = full_text(err)  # torch's own message tells users to pass weights_only=False: it must not show
    assert "weights_only=False" not in text and "`weights_only` set to `False`" not in text


def test_messages_say_what_is_wrong(tmp_path):
    problems = {}
    for kind in ["empty", "truncated", "pickled_object", "state_dict"]:
        write_bad(tmp_path / f"{kind}.pt", kind)
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(tmp_path / f"{kind}.pt")
        problems[kind] = info.value.problem
    assert problems["empty"] == "the file is empty"
    assert "truncated or corrupt" in problems["truncated"]
    assert "Foo" in problems["pickled_object"] and "weights_only=True" in problems["pickled_object"]
    assert "plain state_dict" in problems["state_dict"]


def test_a_missing_file_is_file_not_found_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_folder_is_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="is a folder"):
        load_checkpoint(tmp_path)


def _edited(tmp_path, edit) -> Path:
    data = checkpoint_dict(model(), "bfs", config())
    edit(data)
    path = tmp_path / "edited.pt"
    torch.save(data, path)
    return path


def test_weights_that_do_not_fit_the_model_config_are_reported(tmp_path):
    def wider(data):
        data["model"]["d_hidden"] = 8

    with pytest.raises(CheckpointError, match=r"do not fit its model config: .* is \[.*\], the model wants \[.*8"):
        load_checkpoint(_edited(tmp_path, wider))

    name = next(iter(model().state_dict()))

    def drop_one(data):
        del data["state_dict"][name]

    with pytest.raises(CheckpointError, match=f"missing {name}"):
        load_checkpoint(_edited(tmp_path, drop_one))

    def add_one(data):
        data["state_dict"]["extra.weight"] = torch.zeros(2)

    with pytest.raises(CheckpointError, match="unexpected extra.weight"):
        load_checkpoint(_edited(tmp_path, add_one))


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["model"].pop("spec"), "model config is malformed"),
    (lambda d: d["model"].update(processor="gcm"), "model config is malformed"),
    (lambda d: d["model"].update(task=7), "model config is malformed"),
    (lambda d: d.update(version=99), "version 99"),
    (lambda d: d.update(state_dict=[1, 2]), "'state_dict' entry is list"),
    (lambda d: d["train_config"].update(steps=-5), "train_config is invalid: steps=-5"),
    (lambda d: d["train_config"].update(colour="red"), "train_config is invalid: colour='red'"),
    (lambda d: d.update(metrics={"acc": "high"}), "metrics"),
])
def test_malformed_checkpoint_entries_are_reported(edit, message, tmp_path):
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(_edited(tmp_path, edit))


def test_a_config_with_numpy_numbers_saves_a_checkpoint_that_loads_weights_only(tmp_path):
    cfg = config()
    cfg.d_hidden, cfg.steps, cfg.lr = np.int64(4), np.int64(1), np.float32(0.01)
    cfg.sizes, cfg.sampler_kwargs = np.array([3, 4]), {"p": np.float64(0.5)}
    cfg.validate()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model(), "bfs", cfg)
    raw = torch.load(path, weights_only=True)  # numpy scalars would be refused here
    assert raw["train_config"]["steps"] == 1 and type(raw["train_config"]["lr"]) is float
    assert raw["train_config"]["sizes"] == [3, 4] and type(raw["train_config"]["sampler_kwargs"]["p"]) is float
    assert load_checkpoint(path).train_config == cfg


def test_saving_into_a_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        save_checkpoint(tmp_path / "nowhere" / "m.pt", model(), "bfs")


def test_a_failed_save_keeps_the_old_checkpoint_and_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "m.pt"
    save_checkpoint(path, model(), "bfs", config())
    before = path.read_bytes()

    def save_half_then_fail(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, model(), "bfs")
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.pt"]


def test_load_moves_the_model_to_map_location(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(path, model(), "bfs")
    loaded = load_checkpoint(path, map_location=torch.device("cpu"))
    assert all(p.device.type == "cpu" for p in loaded.model.parameters())
    with pytest.raises(RuntimeError):  # a bad device name is the caller's mistake, not a corrupt file
        load_checkpoint(path, map_location="nonsense")
