"""What a training run needs: :class:`TrainConfig`, model building, round counts.

A model is rebuilt from a *model config*, a plain dict (str/int/bool/dict only, so
that it pickles under ``torch.load(weights_only=True)``), see :func:`model_config`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from hookgnn.graph import Graph
from hookgnn.models import HookedGNN
from hookgnn.nn import PROCESSORS
from hookgnn.spec import FeatureSpec
from hookgnn.tasks import TASKS, Task, get_task
from hookgnn.tasks.model_spec import input_widths, select_spec
from hookgnn.training.data import sample_batch
from hookgnn.training.validation import (
    ROUND_POLICIES,
    ConfigError,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_rounds,
    check_sampler_args,
    first_line,
)

LR_SCHEDULES = ("constant", "cosine")
#: Graphs drawn at the largest training size when a config is checked (see :meth:`TrainConfig.validate`).
PROBE_GRAPHS = 4


@dataclass
class TrainConfig:
    """Everything that defines a training run (same config + seed: same losses).

    The fields, in three groups: the model (``task`` ... ``features``), the data, a fresh
    batch per step (``sampler`` ... ``batch_size``), and the optimisation (``steps`` ... ``progress``).

    >>> TrainConfig(task="bfs", steps=10).sizes
    (16,)

    :param task: task name (:data:`hookgnn.tasks.TASKS`).
    :param processor: processor name (:data:`hookgnn.nn.PROCESSORS`).
    :param d_hidden: width of node states and encodings.
    :param max_steps: rounds the model can run at most (also at test time, so pick it for the largest test
        graphs).
    :param tie_weights: one processor reused in every round (CLRS style).
    :param encode_hints: feed hints back as inputs (teacher forcing or own predictions).
    :param features: the outputs and hints to decode and train (``None``: all outputs, and all hints when
        ``hint_weight > 0``).
    :param sampler: sampler name (:data:`hookgnn.tasks.SAMPLERS`).
    :param sizes: each graph's size is drawn uniformly from these values.
    :param same_size: draw one size per step for the whole batch (so the number of rounds varies from step to
        step) instead of one per graph.
    :param size_arg: the sampler argument that the size goes to (``"n"``, ``"k"`` ...).
    :param sampler_kwargs: other sampler arguments, e.g. ``{"p": 0.3}``.
    :param batch_size: graphs per step.
    :param steps: optimiser steps.
    :param lr: Adam learning rate.
    :param lr_schedule: ``"constant"`` or ``"cosine"`` (decays to 0 at the last step).
    :param l1: weight of the L1 penalty :math:`\\lambda \\sum |\\theta|` on all weight matrices (not biases),
        as in MINAR.
    :param grad_clip: clip the gradient norm to this (0: no clipping).
    :param hint_weight: weight of the hint losses (0: no hint supervision).
    :param rounds: ``"hints"``, ``"nodes"`` (see :data:`ROUND_POLICIES`) or a fixed count.
    :param extra_rounds: each step adds a uniform random ``0 .. extra_rounds`` rounds (teaches a reasoner to
        stay at its fixed point when run longer; hint predictions past a graph's last step are not supervised).
    :param teacher_forcing: with ``encode_hints``, step ``k`` uses the true hints as inputs with probability
        ``p_k``, decaying linearly from ``teacher_forcing`` (first step) to ``teacher_forcing_end`` (last
        step); otherwise the model reads its own (soft) hint predictions.
    :param teacher_forcing_end: ``p_k`` at the last step (see ``teacher_forcing``).
    :param seed: seeds the weights, the data and the teacher-forcing draws.
    :param progress: show a tqdm bar (``None``: only when stderr is a terminal and ``CI`` is unset).
    """

    task: str = "bfs"
    processor: str = "mpnn"
    d_hidden: int = 64
    max_steps: int = 64
    tie_weights: bool = True
    encode_hints: bool = False
    features: tuple[str, ...] | None = None
    sampler: str = "erdos_renyi"
    sizes: tuple[int, ...] = (16,)
    same_size: bool = False
    size_arg: str = "n"
    sampler_kwargs: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 32
    steps: int = 500
    lr: float = 1e-3
    lr_schedule: str = "constant"
    l1: float = 0.0
    grad_clip: float = 1.0
    hint_weight: float = 1.0
    rounds: int | str = "hints"
    extra_rounds: int = 0
    teacher_forcing: float = 0.5
    teacher_forcing_end: float = 0.0
    seed: int = 0
    progress: bool | None = None

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field; raise a :class:`ConfigError` naming the first bad one and its value.

        Numbers become plain ``int`` / ``float``, sequences tuples. Then a few graphs of the
        largest size are drawn with the sampler and its arguments (so that a bad argument,
        or graphs the task refuses, fail here and not at some later step), and the rounds
        they need are checked against ``max_steps``.

        >>> TrainConfig(steps=-5)
        Traceback (most recent call last):
        ...
        hookgnn.training.validation.ConfigError: steps=-5: must be an integer >= 0
        """
        self.task = check_choice("task", self.task, TASKS)
        self.processor = check_choice("processor", self.processor, PROCESSORS)
        for name, low in (("d_hidden", 1), ("max_steps", 1), ("batch_size", 1), ("steps", 0), ("extra_rounds", 0),
                          ("seed", 0)):
            setattr(self, name, check_int(name, getattr(self, name), low))
        for name in ("tie_weights", "encode_hints", "same_size"):
            setattr(self, name, check_bool(name, getattr(self, name)))
        if self.progress is not None:
            self.progress = check_bool("progress", self.progress)
        self.lr = check_float("lr", self.lr, low=0.0, low_open=True)
        for name in ("l1", "grad_clip", "hint_weight"):
            setattr(self, name, check_float(name, getattr(self, name), low=0.0))
        for name in ("teacher_forcing", "teacher_forcing_end"):
            setattr(self, name, check_float(name, getattr(self, name), 0.0, 1.0))
        self.lr_schedule = check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        self.rounds = check_rounds(self.rounds)
        if isinstance(self.rounds, int) and self.rounds > self.max_steps:
            raise ConfigError("rounds", self.rounds, f"is more than max_steps={self.max_steps}, the most rounds "
                                                     "the model can run")
        sizes = _as_tuple(self.sizes)
        if not sizes:
            raise ConfigError("sizes", self.sizes, "must be a non-empty sequence of graph sizes")
        self.sizes = tuple(check_int("sizes", s, 1) for s in sizes)
        self._check_features()
        self.sampler_kwargs = check_sampler_args(self.sampler, self.size_arg, self.sampler_kwargs)
        self._check_data()

    def _check_features(self) -> None:
        if self.features is None:
            return
        features = _as_tuple(self.features)
        if not features or not all(isinstance(f, str) for f in features):
            raise ConfigError("features", self.features, "must be None or a non-empty sequence of output/hint names")
        self.features = features
        if len(set(self.features)) < len(self.features):
            raise ConfigError("features", self.features, "names a feature twice")
        task = get_task(self.task)
        try:
            spec = select_spec(task, self.features, hints=True)
        except KeyError as err:
            raise ConfigError("features", self.features, err.args[0]) from None
        if self.hint_weight == 0 and not any(s.stage == "output" for s in spec.values()):
            raise ConfigError("features", self.features, "names no output and hint_weight=0, so nothing would be "
                                                         "trained")

    def _check_data(self) -> None:
        task, size = get_task(self.task), max(self.sizes)
        try:
            graphs = sample_batch(task, min(self.batch_size, PROBE_GRAPHS), self.sampler, (size,),
                                  (self.seed, (1 << 30) + 1), self.size_arg, self.sampler_kwargs)
        except (TypeError, ValueError) as err:
            call = ", ".join([f"{self.size_arg}={size}"] + [f"{k}={v!r}" for k, v in self.sampler_kwargs.items()])
            raise ConfigError("sampler_kwargs", self.sampler_kwargs,
                              f"{task.name} on {self.sampler}({call}) graphs fails: {first_line(err)}") from None
        need = num_rounds(graphs, self.rounds)
        if need > self.max_steps:
            raise ConfigError("max_steps", self.max_steps,
                              f"{task.name} on {self.sampler} graphs of size {size} needs {need} rounds "
                              f"(rounds={self.rounds!r}); raise max_steps to at least {need} or pass a fixed "
                              "rounds count")

    def to_dict(self) -> dict[str, Any]:
        """Plain-data copy (tuples as lists) for checkpoints and JSON."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (unknown keys are an error).

        >>> cfg = TrainConfig(task="bellman_ford", sizes=(4, 8), features=("d",))
        >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
        True
        """
        data = dict(data)
        known = {f.name for f in fields(cls)}
        for key in data:
            if key not in known:
                raise ConfigError(str(key), data[key], "is not a TrainConfig field")
        for key in ("sizes", "features"):
            if isinstance(data.get(key), list):
                data[key] = tuple(data[key])
        return cls(**data)


def _as_tuple(value: Any) -> tuple[Any, ...] | None:
    """``tuple(value)`` for a list, tuple, array ...; ``None`` for a string or a non-iterable."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        return None
    return tuple(value)


def build_model(
    task: Task | str,
    processor: str = "mpnn",
    d_hidden: int = 64,
    max_steps: int = 64,
    tie_weights: bool = True,
    encode_hints: bool = False,
    features: Sequence[str] | None = None,
    hints: bool = True,
) -> HookedGNN:
    """A :class:`HookedGNN` sized for ``task``'s inputs, decoding its outputs (and hints):
    :meth:`HookedGNN.for_task <hookgnn.models.gnn.HookedGNN.for_task>` for a processor name (the
    model :func:`~hookgnn.training.train` builds).

    >>> model = build_model("bfs", "mpnn", d_hidden=8, max_steps=4)
    >>> sorted(model.output_spec), sorted(model.hint_spec)
    (['pi', 'reach'], ['pi_h', 'reach_h'])
    """
    if processor not in PROCESSORS:
        raise KeyError(f"unknown processor {processor!r}; known: {sorted(PROCESSORS)}")
    return HookedGNN.for_task(task, processor, d_hidden, max_steps, tie_weights, encode_hints, features, hints)


def model_config(model: HookedGNN, task: Task | str) -> dict[str, Any]:
    """The plain dict that :func:`model_from_config` rebuilds ``model`` from.

    >>> cfg = model_config(build_model("bfs", "mpnn", d_hidden=8, max_steps=4), "bfs")
    >>> cfg["processor"], cfg["d_hidden"], cfg["spec"]["pi"]
    ('mpnn', 8, {'stage': 'output', 'location': 'node', 'type': 'pointer', 'dim': 1})
    """
    name = getattr(model, "processor_name", None)
    if name is None:  # built by hand: find the class among the named processors
        cls = type(model.layers[0])
        name = next((k for k, v in PROCESSORS.items() if v is cls), None)
    if name is None:
        raise ValueError("model_config needs a processor from hookgnn.nn.PROCESSORS, not a custom factory")
    spec = {**model.output_spec, **model.hint_spec}
    return {
        "task": task if isinstance(task, str) else task.name,
        "processor": name,
        "d_hidden": model.d_hidden,
        "node_in": model.node_in,
        "edge_in": model.edge_in,
        "graph_in": model.graph_in,
        "spec": {k: _spec_dict(s) for k, s in spec.items()},
        "max_steps": model.max_steps,
        "tie_weights": model.tie_weights,
        "encode_hints": model.encode_hints,
    }


def _spec_dict(s: FeatureSpec) -> dict[str, Any]:
    """A spec as a plain dict; ``any_node`` only where set, so older configs read the same."""
    out: dict[str, Any] = {"stage": s.stage, "location": s.location, "type": s.type, "dim": s.dim}
    return {**out, "any_node": True} if s.any_node else out


def model_from_config(cfg: Mapping[str, Any]) -> HookedGNN:
    """Rebuild an (untrained) model from :func:`model_config`'s dict.

    >>> m = model_from_config(model_config(build_model("bfs", d_hidden=8, max_steps=4), "bfs"))
    >>> m.d_hidden, m.max_steps
    (8, 4)
    """
    spec = {k: FeatureSpec(**v) for k, v in cfg["spec"].items()}
    model = HookedGNN(cfg["processor"], cfg["d_hidden"], cfg["node_in"], cfg["edge_in"], cfg["graph_in"], spec,
                      cfg["max_steps"], cfg["tie_weights"], cfg["encode_hints"])
    model.processor_name = cfg["processor"]
    return model


def num_rounds(graph: Graph, policy: int | str, max_steps: int | None = None) -> int:
    """Rounds to run on ``graph`` under ``policy`` (:data:`ROUND_POLICIES` or an int), >= 1.

    With ``max_steps``, asking for more rounds raises a ``ValueError`` naming the fix.

    >>> from hookgnn.tasks import get_task
    >>> g = get_task("bfs").sample(2, "weighted_path", seed=0, n=5)  # source at an end
    >>> num_rounds(g, "hints"), num_rounds(g, "nodes"), num_rounds(g, 3)
    (4, 4, 3)
    """
    if isinstance(policy, int):
        rounds = policy
    elif policy == "hints":
        rounds = int(graph["num_steps"].max()) - 1
    elif policy == "nodes":
        rounds = int(graph.ptr.diff().max()) - 1
    else:
        raise ValueError(f"rounds must be an int or one of {ROUND_POLICIES}, got {policy!r}")
    rounds = max(rounds, 1)
    if max_steps is not None and rounds > max_steps:
        raise ValueError(f"these graphs need {rounds} rounds ({policy!r}) but the model has max_steps={max_steps}; "
                         "train with a larger max_steps or pass a smaller fixed rounds count")
    return rounds
