"""Training on several processes: one global batch per step, split across ranks, one gradient.

Step :math:`k` of a run with seed :math:`s`, global batch :math:`B` and :math:`W` processes:

1. every rank draws the global batch of step :math:`k` exactly as one process would
   (:func:`~hookgnn.training.data.sample_batch`, seed :math:`(s, k)`) and keeps graphs
   :math:`[\\lfloor rB/W \\rfloor, \\lfloor (r+1)B/W \\rfloor)` (:meth:`World.share`);
   the rounds to run, the extra rounds and teacher forcing come from the run's seed
   and the global batch, so they are the same on every rank;
2. rank :math:`r` computes, per loss term :math:`k` (an output or a hint), the sum
   :math:`S_{k,r}` and number :math:`n_{k,r}` of its item losses
   (:func:`~hookgnn.training.losses.loss_sums`); the counts are added over ranks
   (one ``all_reduce`` of a few numbers) and the rank's loss is
   :math:`L_r = W \\sum_k w_k S_{k,r} / \\max(n_k, 1)` with :math:`n_k = \\sum_r n_{k,r}`;
3. DistributedDataParallel averages the gradients, :math:`\\frac1W \\sum_r \\nabla L_r
   = \\nabla \\sum_k w_k S_k / \\max(n_k, 1)`: the gradient of the one-process loss on the
   whole batch (the mean over all its items, not a mean of per-rank means, which would
   weigh ranks with small graphs too much). Clipping and Adam then run on the same
   gradient on every rank.

Why a slice of the one-process stream, rather than a stream per rank: a run with seed
:math:`s` and batch :math:`B` then sees the same graphs whatever :math:`W` is, so its
losses and weights agree with the one-process run to float rounding and :math:`W` is a
speed setting only (``tests/test_parallel_training.py`` checks 2 processes against 1).
The price is that every rank draws all :math:`B` graphs of a step, a small part of a
step's time. Per-rank randomness (none in hookgnn's processors; e.g. dropout in your
own) comes from torch's global generator, seeded with :math:`(s, r)` on rank :math:`r`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from hookgnn.graph import Graph
from hookgnn.parallel.world import World


def rank_batch(graph: Graph, world: World) -> Graph:
    """Rank's contiguous share of the graphs of a batch (the whole batch for one process).

    >>> g = Graph.collate([Graph(x=torch.full((n, 1), float(n)), edge_index=torch.zeros(2, 0, dtype=torch.long))
    ...                    for n in (1, 2, 3)])
    >>> rank_batch(g, World(1, 2)).x.flatten().tolist()
    [2.0, 2.0, 3.0, 3.0, 3.0]
    """
    if world.size == 1:
        return graph
    lo, hi = world.share(graph.num_graphs)
    if hi <= lo:
        raise ValueError(f"a batch of {graph.num_graphs} graphs cannot give every one of {world.size} processes a "
                         f"graph: use batch_size >= {world.size}")
    parts = graph.split()[lo:hi]
    return parts[0] if len(parts) == 1 else Graph.collate(parts)


def rank_seed(seed: int, rank: int) -> int:
    """The seed of torch's global generator on ``rank`` of a run seeded ``seed``.

    >>> rank_seed(0, 0) != rank_seed(0, 1)
    True
    """
    return int(np.random.SeedSequence([seed, rank, 1 << 21]).generate_state(1, np.uint64)[0] >> 1)


def global_loss(terms: dict[str, tuple[float, Tensor, Tensor]], world: World) -> tuple[Tensor, dict[str, float]]:
    """This rank's loss to differentiate (see step 2 of the module docstring) and the global parts.

    ``terms`` is :func:`~hookgnn.training.losses.loss_sums` of this rank's share. The
    parts are the one-process values: ``S_k / max(n_k, 1)`` over the whole batch.

    >>> t = {"out/d": (1.0, torch.tensor(6.0), torch.tensor(3.0))}
    >>> loss, parts = global_loss(t, World())
    >>> float(loss), parts
    (2.0, {'out/d': 2.0})
    """
    names = list(terms)
    numbers = torch.stack([terms[n][2].detach().double() for n in names] + [terms[n][1].detach().double() for n in names])
    world.all_reduce_sum(numbers)
    counts, sums = numbers[:len(names)], numbers[len(names):]
    loss: Tensor = torch.zeros(())
    parts: dict[str, float] = {}
    for i, name in enumerate(names):
        weight, total, _ = terms[name]
        denom = max(float(counts[i]), 1.0)
        loss = loss.to(total) + weight * total / denom
        parts[name] = float(sums[i]) / denom
    return loss * world.size, parts


class StepModule(nn.Module):
    """The model's forward and the weight penalty in one module, so that DistributedDataParallel
    sees every parameter a step uses (a penalty outside its forward would be a second,
    unannounced use of the parameters)."""

    def __init__(self, model: nn.Module, penalty: Callable[[nn.Module], Tensor] | None) -> None:
        super().__init__()
        self.model, self.penalty = model, penalty

    def forward(self, graph: Graph, steps: int, teacher_forcing: bool) -> tuple[Any, Tensor]:
        out = self.model(graph, steps=steps, teacher_forcing=teacher_forcing)
        return out, (self.penalty(self.model) if self.penalty is not None else graph.x.new_zeros(()))


def distributed(model: nn.Module, penalty: Callable[[nn.Module], Tensor] | None, world: World) -> nn.Module:
    """``StepModule(model, penalty)`` in DistributedDataParallel over ``world`` (its parameters are
    broadcast from rank 0; unused ones, e.g. rounds not run, keep no gradient, as in one process)."""
    from torch.nn.parallel import DistributedDataParallel

    step = StepModule(model, penalty)
    return DistributedDataParallel(step, find_unused_parameters=True, process_group=world.group)
