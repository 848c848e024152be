"""Checkpoints as plain data, loadable with ``torch.load(path, weights_only=True)``.

A checkpoint is a dict of tensors, strings, numbers, lists and dicts only:

* ``"format"``: ``"hookgnn-checkpoint"``, ``"version"``: 1;
* ``"model"``: :func:`~hookgnn.training.config.model_config` (processor, widths, spec
  as plain dicts, max_steps, tie_weights, encode_hints, task);
* ``"state_dict"``: the model weights;
* ``"train_config"``: :meth:`TrainConfig.to_dict` or ``None``;
* ``"metrics"``: any ``str -> float`` dict (e.g. final evaluation), possibly empty.

:func:`load_checkpoint` raises one :class:`CheckpointError` (a ``ValueError``) naming the
file and what is wrong with it (empty, truncated, corrupt, another kind of file, weights
that do not fit the model config), or ``FileNotFoundError`` when there is no such file.
"""

from __future__ import annotations

import os
import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from dataclasses import dataclass, field
from typing import Any

import torch

from hookgnn.models import HookedGNN
from hookgnn.tasks import Task
from hookgnn.training.config import TrainConfig, model_config, model_from_config

FORMAT, VERSION = "hookgnn-checkpoint", 1
_ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(ValueError):
    """A file that is not a loadable hookgnn checkpoint; ``path`` and ``problem`` say which and why.

    >>> str(CheckpointError("m.pt", "the file is empty"))
    "cannot load checkpoint 'm.pt': the file is empty"
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path, self.problem = os.fspath(path), problem
        super().__init__(f"cannot load checkpoint {self.path!r}: {problem}")

    def __reduce__(self) -> tuple[object, ...]:
        return type(self), (self.path, self.problem)


@dataclass
class Checkpoint:
    """A loaded checkpoint: the rebuilt model and what was saved with it."""

    model: HookedGNN
    task: str
    train_config: TrainConfig | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def checkpoint_dict(
    model: HookedGNN,
    task: Task | str,
    train_config: TrainConfig | None = None,
    metrics: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The plain dict that :func:`save_checkpoint` writes.

    >>> from hookgnn.training.config import build_model
    >>> d = checkpoint_dict(build_model("bfs", d_hidden=8, max_steps=2), "bfs")
    >>> d["format"], d["model"]["processor"], d["train_config"]
    ('hookgnn-checkpoint', 'mpnn', None)
    """
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": model_config(model, task),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "train_config": None if train_config is None else train_config.to_dict(),
        "metrics": {k: float(v) for k, v in (metrics or {}).items()},
    }


def save_checkpoint(
    path: str | os.PathLike[str],
    model: HookedGNN,
    task: Task | str,
    train_config: TrainConfig | None = None,
    metrics: Mapping[str, float] | None = None,
) -> None:
    """Write ``model`` (and how it was trained) to ``path``.

    The file is written next to ``path`` under a temporary name and then renamed, so an
    existing checkpoint is replaced only by a complete one. A missing folder is an error
    (``FileNotFoundError`` naming it), as is a ``path`` that is a folder.

    >>> import tempfile, pathlib
    >>> from hookgnn.training.config import build_model
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.pt"
    >>> save_checkpoint(path, build_model("bfs", d_hidden=8, max_steps=2), "bfs")
    >>> load_checkpoint(path).model.d_hidden
    8
    """
    path = Path(path)
    data = checkpoint_dict(model, task, train_config, metrics)  # before touching the disk: fails on bad input
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot save checkpoint {os.fspath(path)!r}: folder {os.fspath(path.parent)!r} "
                                "does not exist")
    if path.is_dir():
        raise IsADirectoryError(f"cannot save checkpoint {os.fspath(path)!r}: it is a folder")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Checkpoint:
    """Read a checkpoint with ``weights_only=True`` and rebuild its model (in eval mode, on ``map_location``).

    Anything but a checkpoint written by :func:`save_checkpoint` raises
    :class:`CheckpointError` naming the file and the problem (``FileNotFoundError`` when
    there is no file).

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "empty.pt"
    >>> _ = path.write_bytes(b"")
    >>> load_checkpoint(path)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    hookgnn.training.checkpoint.CheckpointError: cannot load checkpoint '...empty.pt': the file is empty
    """
    device = torch.device(map_location)  # a bad device name fails here, not as "a corrupt file"
    data = _read(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(path, f"not a hookgnn checkpoint ({_describe(data)}); checkpoints are written by "
                                    "save_checkpoint or `hookgnn train --out`")
    if data.get("version") != VERSION:
        raise CheckpointError(path, f"checkpoint version {data.get('version')!r} is not supported "
                                    f"(this hookgnn reads version {VERSION})")
    for key, kind in (("model", dict), ("state_dict", dict), ("train_config", (dict, type(None))),
                      ("metrics", (dict, type(None)))):
        if not isinstance(data.get(key), kind):
            raise CheckpointError(path, f"its {key!r} entry is {type(data.get(key)).__name__}, not a dict")
    try:
        model = model_from_config(data["model"])
        task = data["model"]["task"]
        if not isinstance(task, str):
            raise TypeError(f"its task is a {type(task).__name__}, not a name")
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(path, f"its model config is malformed ({type(err).__name__}: {err})") from None
    _check_weights(path, model, data["state_dict"])
    model.load_state_dict(data["state_dict"])
    model.to(device).eval()
    cfg = data.get("train_config")
    try:
        train_config = None if cfg is None else TrainConfig.from_dict(cfg)
    except (TypeError, ValueError) as err:
        raise CheckpointError(path, f"its train_config is invalid: {err}") from None
    metrics = data.get("metrics") or {}
    if not all(isinstance(k, str) and isinstance(v, (int, float)) for k, v in metrics.items()):
        raise CheckpointError(path, "its metrics are not a dict of names to numbers")
    return Checkpoint(model, task, train_config, {k: float(v) for k, v in metrics.items()})


def _read(path: str | os.PathLike[str]) -> object:
    """``torch.load(path, weights_only=True)``, every failure turned into one clear error."""
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"no such checkpoint file: {os.fspath(path)!r}")
    if file.is_dir():
        raise CheckpointError(path, "it is a folder, not a checkpoint file")
    try:
        with open(file, "rb") as f:
            head = f.read(len(_ZIP_MAGIC))
    except OSError as err:
        raise CheckpointError(path, f"cannot read it ({err.strerror or err})") from None
    if not head:
        raise CheckpointError(path, "the file is empty")
    try:
        with warnings.catch_warnings():  # e.g. torch's note on pickle protocols: the error below says it all
            warnings.simplefilter("ignore")
            return torch.load(file, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except pickle.UnpicklingError as err:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
        if found:  # torch's own text suggests weights_only=False, which would run the file's code: not repeated
            raise CheckpointError(path, f"it holds a pickled Python object ({found.group(1)}) that safe loading "
                                        "(weights_only=True) refuses; a hookgnn checkpoint holds only tensors "
                                        "and plain data") from None
        raise CheckpointError(path, _unreadable(head)) from None
    except Exception:  # noqa: BLE001 - whatever torch raises on a bad file (RuntimeError, EOFError, KeyError ...)
        raise CheckpointError(path, _unreadable(head)) from None


def _unreadable(head: bytes) -> str:
    if head == _ZIP_MAGIC:
        return "torch cannot read this zip archive: it is truncated or corrupt"
    return "it is not a torch checkpoint file (truncated, corrupt or another format)"


def _describe(data: object) -> str:
    """A few words on what a foreign file holds."""
    if isinstance(data, dict) and data and all(isinstance(v, torch.Tensor) for v in data.values()):
        plural = "s" if len(data) != 1 else ""
        return f"it holds a plain state_dict of {len(data)} tensor{plural}, without the model config"
    if isinstance(data, dict):
        keys = ", ".join(repr(k) for k in list(data)[:5]) + (", ..." if len(data) > 5 else "")
        return f"a dict without format={FORMAT!r} (keys: {keys or 'none'})"
    return f"it holds a {type(data).__name__}"


def _check_weights(path: str | os.PathLike[str], model: HookedGNN, state: Mapping[str, object]) -> None:
    """Raise a :class:`CheckpointError` unless ``state`` has exactly the model's tensors and shapes."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} is {_shape(state[k])}, the model wants {list(v.shape)}" for k, v in expected.items()
             if k in state and (not isinstance(state[k], torch.Tensor) or state[k].shape != v.shape)]
    if missing or unexpected or wrong:
        parts = ([f"missing {_few(missing)}"] if missing else []) + \
                ([f"unexpected {_few(unexpected)}"] if unexpected else []) + wrong[:3]
        raise CheckpointError(path, "its weights do not fit its model config: " + "; ".join(parts))


def _shape(value: object) -> str:
    return str(list(value.shape)) if isinstance(value, torch.Tensor) else f"a {type(value).__name__}"


def _few(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
