"""Evaluate a trained model on a batch of task graphs (no teacher forcing)."""

from __future__ import annotations

import torch

from hookgnn._deprecated import deprecated_alias
from hookgnn.graph import Graph
from hookgnn.metrics.features import feature_metrics
from hookgnn.models import HookedGNN
from hookgnn.tasks import Task, get_task
from hookgnn.training.config import num_rounds
from hookgnn.training.losses import task_loss


@torch.no_grad()
def evaluate_model(model: HookedGNN, task: Task | str, graphs: Graph, rounds: int | str = "hints") -> dict[str, float]:
    """Metrics of every decoded output on ``graphs``, keyed ``"<output>.<metric>"``.

    The model runs ``num_rounds(graphs, rounds)`` rounds on its own predictions (hints
    are read only at step 0, as at test time); metrics are those of
    :mod:`hookgnn.metrics.features`, plus ``"loss"`` (the output loss, no hints) and
    ``"rounds"``. The model's train/eval mode is restored afterwards.

    >>> from hookgnn.training.config import build_model
    >>> task = get_task("bfs")
    >>> model = build_model(task, d_hidden=8, max_steps=8)
    >>> m = evaluate_model(model, task, task.sample(2, "path", seed=0, n=4))
    >>> sorted(m)
    ['loss', 'pi.accuracy', 'pi.graph_accuracy', 'reach.accuracy', 'reach.f1', 'reach.graph_accuracy', 'rounds']

    :param model: the trained reasoner.
    :param task: the task (or its name) whose outputs and metrics are used.
    :param graphs: a batch of the task's graphs, with their targets.
    :param rounds: ``"hints"``, ``"nodes"`` or a fixed count (see ``num_rounds``).
    """
    task = get_task(task) if isinstance(task, str) else task
    steps = num_rounds(graphs, rounds, model.max_steps)
    was_training = model.training
    model.eval()
    try:
        out = model(graphs, steps=steps)
    finally:
        model.train(was_training)
    metrics: dict[str, float] = {}
    for name, pred in out.outputs.items():
        for metric, value in feature_metrics(task.spec[name], pred, graphs[name], graphs).items():
            metrics[f"{name}.{metric}"] = value
    loss, _ = task_loss(out, graphs, task.spec, hint_weight=0.0)
    metrics["loss"] = float(loss)
    metrics["rounds"] = float(steps)
    return dict(sorted(metrics.items()))


evaluate = deprecated_alias("evaluate", evaluate_model, "hookgnn.training.evaluate_model(model, task, graphs, rounds)")
