"""The training loop: fresh batches, task losses, optional L1, Adam, gradient clipping.

One optimisation step ``k``:

1. draw a batch (:func:`~hookgnn.training.data.sample_batch`, seed ``(seed, k)``);
2. run ``R = num_rounds(batch, config.rounds)`` rounds, with teacher forcing with
   probability :func:`teacher_forcing_prob` when the model encodes hints;
3. :math:`L = \\sum_{outputs} L_o + \\lambda_h \\sum_{hints} L_h + \\lambda_1 \\sum_W |W|`
   (:func:`~hookgnn.training.losses.task_loss`, :func:`l1_penalty`);
4. clip the gradient norm, take an Adam step.

Runs are reproducible: the weights, the batches and the teacher-forcing draws all
derive from ``config.seed`` (the global torch RNG is left as it was).

Under ``torchrun`` (a ``torch.distributed`` process group is initialised) each process
takes a slice of every global batch of ``config.batch_size`` graphs and the gradients
are averaged by DistributedDataParallel so that the step is the one-process step on
the whole batch (:mod:`hookgnn.parallel.training`): a run's result does not depend on
the number of processes, to float rounding.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn
from tqdm.auto import tqdm

from hookgnn.models import HookedGNN
from hookgnn.ops.threads import auto_threads, check_threads, graph_work
from hookgnn.tasks import get_task
from hookgnn.training.config import TrainConfig, build_model, num_rounds, select_spec
from hookgnn.training.data import sample_batch
from hookgnn.training.losses import loss_sums, task_loss


def l1_penalty(model: nn.Module) -> Float[Tensor, ""]:
    """:math:`\\sum |W|` over the weight matrices (parameters with >= 2 dims; shared ones once).

    >>> l1_penalty(nn.Linear(2, 1, bias=True).requires_grad_(False).apply(lambda m: m.weight.fill_(-1.0)))
    tensor(2.)
    """
    weights = [p.abs().sum() for p in model.parameters() if p.dim() >= 2]
    return torch.stack(weights).sum() if weights else torch.zeros(())


def teacher_forcing_prob(config: TrainConfig, step: int) -> float:
    """Probability of teacher forcing at ``step``: linear from ``teacher_forcing`` to ``teacher_forcing_end``.

    >>> cfg = TrainConfig(steps=5, teacher_forcing=1.0, teacher_forcing_end=0.0)
    >>> [teacher_forcing_prob(cfg, k) for k in range(5)]
    [1.0, 0.75, 0.5, 0.25, 0.0]
    """
    frac = step / (config.steps - 1) if config.steps > 1 else 0.0
    return config.teacher_forcing + (config.teacher_forcing_end - config.teacher_forcing) * frac


def lr_factor(config: TrainConfig, step: int) -> float:
    """Learning-rate multiplier at ``step``: 1, or a cosine from 1 to 0 over ``config.steps``.

    >>> [round(lr_factor(TrainConfig(steps=3, lr_schedule="cosine"), k), 2) for k in range(3)]
    [1.0, 0.75, 0.25]
    """
    if config.lr_schedule == "constant" or config.steps <= 0:
        return 1.0
    return 0.5 * (1.0 + math.cos(math.pi * min(step, config.steps) / config.steps))


def show_progress(setting: bool | None) -> bool:
    """Whether to draw a progress bar: ``setting``, or (``None``) a terminal outside CI."""
    if setting is not None:
        return setting
    return sys.stderr.isatty() and not os.environ.get("CI")


StopHandler = Callable[[HookedGNN, list[dict[str, float]], BaseException], None]


def train(
    config: TrainConfig, on_stop: StopHandler | None = None, device: torch.device | str | None = None,
    threads: int | None = None,
) -> tuple[HookedGNN, list[dict[str, float]]]:
    """Train a model as ``config`` says; returns it and one record per step.

    ``threads``: torch CPU threads for the steps (default: chosen by workload, one for
    small batches; see :mod:`hookgnn.ops.threads`), torch's setting restored after.

    ``device``: where the model and the batches go (default: the CPU). With a
    ``torch.distributed`` process group, every process trains its share of each batch
    (module docstring); records then hold the whole batch's losses, the same on every rank.

    If a step raises (or the run is interrupted with Ctrl-C), ``on_stop(model, history,
    error)`` is called with the model trained so far before the error propagates, so a
    long run never loses its result to a late error (the CLI saves it).

    Each record has ``step``, ``loss`` (the total), ``l1``, ``rounds``,
    ``teacher_forcing`` (1 if that step used the true hints) and the parts of
    :func:`~hookgnn.training.losses.task_loss` (``"out/<name>"``, ``"hint/<name>"``).

    >>> cfg = TrainConfig(task="bfs", d_hidden=8, max_steps=8, sizes=(5,), batch_size=2, steps=2,
    ...                   sampler_kwargs={"p": 0.5}, progress=False)
    >>> model, history = train(cfg)
    >>> len(history), sorted(history[0])[:3]
    (2, ['hint/pi_h', 'hint/reach_h', 'l1'])

    :param config: the run (:class:`TrainConfig`).
    :param on_stop: called as ``on_stop(model, history, error)`` when a step raises or the run is interrupted.
    :param device: where the model and the batches go (default: the CPU).
    :param threads: torch CPU threads for the steps (default: chosen by workload).
    """
    from hookgnn.parallel.training import rank_seed  # lazy: hookgnn.parallel brings in the estimators too
    from hookgnn.parallel.world import World

    if threads is not None:
        check_threads(threads)
    task = get_task(config.task)
    hints = config.hint_weight > 0 or config.encode_hints
    select_spec(task, config.features, hints)  # fail early on unknown feature names
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(task, config.processor, config.d_hidden, config.max_steps, config.tie_weights,
                            config.encode_hints, config.features, hints)
    world = World.current()
    if world.size > config.batch_size:
        raise ValueError(f"batch_size={config.batch_size} graphs cannot be split across {world.size} processes: "
                         f"use batch_size >= {world.size} (it is the global batch, split across them)")
    if device is not None:
        model.to(device)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: lr_factor(config, k))
    coin = np.random.default_rng([config.seed, 1 << 20])  # sizes, extra rounds, teacher forcing
    history: list[dict[str, float]] = []
    bar = tqdm(range(config.steps), disable=not (world.is_main and show_progress(config.progress)),
               desc=f"train {config.task}")
    try:
        if world.size == 1:
            _steps(config, task, model, optimizer, schedule, coin, history, bar, device, threads=threads)
        else:
            on_gpu = device is not None and torch.device(device).type == "cuda"
            with torch.random.fork_rng(devices=[torch.device(device).index or 0] if on_gpu else []):  # type: ignore[arg-type]
                torch.manual_seed(rank_seed(config.seed, world.rank))
                _steps(config, task, model, optimizer, schedule, coin, history, bar, device, world, threads)
    except BaseException as err:
        if on_stop is not None:
            model.eval()
            on_stop(model, history, err)
        raise
    model.eval()
    return model, history


def _steps(config: TrainConfig, task: Any, model: HookedGNN, optimizer: torch.optim.Optimizer, schedule: Any,
           coin: np.random.Generator, history: list[dict[str, float]], bar: Any, device: Any = None,
           world: Any = None, threads: int | None = None) -> None:
    from hookgnn.parallel.training import distributed, global_loss, rank_batch

    net = None if world is None else distributed(model, l1_penalty if config.l1 > 0 else None, world)
    scope = contextlib.ExitStack()  # the thread setting of the run, restored however it ends
    with scope:
        for step in bar:
            sizes = (int(coin.choice(config.sizes)),) if config.same_size else config.sizes
            graph = sample_batch(task, config.batch_size, config.sampler, sizes, (config.seed, step),
                                 config.size_arg, config.sampler_kwargs)
            if step == 0:  # the workload is known once a batch is drawn: threads for the whole run
                scale = (max(config.sizes) / sizes[0]) ** 2 if config.same_size else 1.0
                scope.enter_context(auto_threads(int(graph_work(graph, model.d_hidden) * scale), threads))
            extra = int(coin.integers(config.extra_rounds + 1)) if config.extra_rounds > 0 else 0
            rounds = min(num_rounds(graph, config.rounds, model.max_steps) + extra, model.max_steps)
            forced = bool(coin.random() < teacher_forcing_prob(config, step)) and model.encode_hints
            if net is None or world is None:
                graph = graph if device is None else graph.to(device)
                out = model(graph, steps=rounds, teacher_forcing=forced)
                loss, parts = task_loss(out, graph, task.spec, config.hint_weight)
                penalty = l1_penalty(model) if config.l1 > 0 else loss.new_zeros(())
            else:  # this rank's slice of the global batch; the loss normalised over the whole batch
                graph = rank_batch(graph, world)
                graph = graph if device is None else graph.to(device)
                out, penalty = net(graph, rounds, forced)
                terms = loss_sums(out, graph, task.spec, config.hint_weight)
                loss, parts = global_loss(terms, world)
                whole = sum(weight * parts[name] for name, (weight, _, _) in terms.items())
            total = loss + config.l1 * penalty
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            if config.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            schedule.step()
            shown = float(total.detach()) if world is None else whole + config.l1 * float(penalty.detach())
            record = {"step": float(step), "loss": shown, "l1": float(penalty.detach()),
                      "rounds": float(rounds), "teacher_forcing": float(forced), **parts}
            history.append(dict(sorted(record.items())))
            bar.set_postfix(loss=f"{record['loss']:.4f}", refresh=False)
