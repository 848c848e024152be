"""Dataset-level patching and attribution: the mean over many (clean, corrupted) pairs, on one process or many.

::

    from hookgnn.parallel import over_pairs
    scores = over_pairs(eap, model, pairs, metric, ig_steps=8)      # EdgeScores, mean over the pairs

``pairs`` is any iterable of ``(clean, corrupted)`` :class:`~hookgnn.graph.Graph` pairs:
a list, a generator, or a ``torch.utils.data.DataLoader(dataset, batch_size=None)``
over a dataset of pairs. The result has the type of the per-pair scorer's result, with the same ``direction``.

**How results combine.** The per-pair function gives :math:`s_p` for pair :math:`p`
(for a pair that holds a batch of :math:`G_p` graphs, already the mean over those
graphs, as every hookgnn metric is). The dataset result is the mean over pairs of the
per-pair results,

.. math:: s = \\frac{1}{P} \\sum_{p=1}^{P} s_p ,

for every number of the result (effects, ``baseline``, attribution products).
So a pair of :math:`G` graphs weighs as much as a pair of one graph; to weigh graphs
equally give single-graph pairs (``zip(clean.split(), corrupted.split())``) or pairs of
equal size. Row scores (nodes, message edges) average only over pairs of one graph
structure; neuron (feature) and weight-edge scores average over any graphs. A result
that does not fit the first pair's raises ``ValueError`` saying what differs.

**Processes.** With ``torch.distributed`` initialised (``torchrun``, see
:func:`~hookgnn.parallel.world.init_from_env`), rank :math:`r` of :math:`W` computes
pairs :math:`r, r + W, r + 2W, \\dots` (``sharded=True``: the pairs it is given are its
own already, e.g. from a ``DistributedSampler``), and the sums and the count are added
with one ``all_reduce``; every rank returns the same result. Sums are taken in float64
in pair order, so one process gives the plain loop's mean, and any world size gives
it to float tolerance. An error on one rank is raised on every rank.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.parallel.packing import Layout, check_layout, flat, pack, unflat, unpack
from hookgnn.parallel.world import World
from hookgnn.metrics.per_graph import Metric

Pair = tuple[Graph, Graph]


def over_pairs(
    fn: Callable[..., Any],
    model: HookedRootModule,
    pairs: Iterable[Any],
    metric: Metric,
    *,
    world: World | None = None,
    sharded: bool = False,
    **kwargs: Any,
) -> Any:
    """:math:`\\frac{1}{P}\\sum_p` ``fn(model, clean_p, corrupted_p, metric, **kwargs)`` over ``pairs``.

    ``fn`` is any scorer of :mod:`hookgnn.patching` (``patch``, ``attribute``, ``eap``,
    ``atp_star``, ...) returning :class:`HookScores`, :class:`EdgeScores` or an
    :class:`Attribution` with ``keep != "all"``; ``kwargs`` are its keywords (a selector for
    ``patch``, ``ig_steps`` and ``keep`` for ``attribute``, ...). The result has ``fn``'s
    type and ``direction``. See the module docstring for sharding and the combination rule.

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.metrics import OutputSum
    >>> from hookgnn.patching import messages, patch
    >>> from hookgnn.spec import FeatureSpec
    >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=2)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> pairs = [(g, g.replace(x=torch.randn(3, 1))) for _ in range(3)]
    >>> over_pairs(patch, model, pairs, OutputSum("d"), components=messages(model)).values.shape
    torch.Size([2, 2])

    :param fn: the scorer, called as ``fn(model, clean, corrupted, metric, **kwargs)`` for each pair.
    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param pairs: ``(clean, corrupted)`` graph pairs.
    :param metric: ``metric(output, graph)`` -> one value per graph (:mod:`hookgnn.metrics`), averaged over the
        batch.
    :param world: the processes to share the pairs among (default: the current ``torch.distributed`` world, or one
        process).
    :param sharded: the pairs given are this process's share already (e.g. from a ``DistributedSampler``).
    :param kwargs: ``fn``'s keywords (a selector for ``patch``, ``ig_steps`` and ``keep`` for ``attribute`` ...).
    """
    return mean_of(fn, model, pairs, metric, (), kwargs, world, sharded)


def mean_of(
    fn: Callable[..., Any],
    model: HookedRootModule,
    pairs: Iterable[Any],
    metric: Metric,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    world: World | None,
    sharded: bool,
) -> Any:
    """:func:`over_pairs` with positional ``args`` after the metric too (for the 0.1 wrappers)."""
    world = World.current() if world is None else world
    layout: Layout | None = None
    total: Tensor | None = None
    count = 0
    error: BaseException | None = None
    try:
        for i, pair in enumerate(pairs if sharded else world.shard(pairs)):
            clean, corrupted = _as_pair(pair, i, world, sharded)
            lay, numbers = unpack(fn(model, clean, corrupted, metric, *args, **kwargs))
            if layout is None:
                layout, total = lay, flat(numbers)
            else:
                check_layout(layout, lay, _where(i, world, sharded))
                total.add_(flat(numbers))  # type: ignore[union-attr]
            count += 1
    except Exception as err:  # noqa: BLE001 - re-raised on every rank below
        error = err
    world.agree(error, "scoring the pairs")
    reports = world.gather((layout, count))
    layouts = [(r, lay) for r, (lay, n) in enumerate(reports) if n]
    if not layouts:
        raise ValueError("no pairs to score: pairs was empty")
    first_rank, layout = layouts[0]
    for rank, lay in layouts[1:]:
        check_layout(layout, lay, f"rank {rank}'s pairs (against rank {first_rank}'s)")
    assert layout is not None
    vector = total if total is not None else torch.zeros(sum(_numel(s) for s, _ in layout[-1]), dtype=torch.float64)
    counts = torch.tensor([float(count)], dtype=torch.float64)
    world.all_reduce_sum(vector)
    world.all_reduce_sum(counts)
    return pack(layout, unflat(vector / counts, layout))


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _where(i: int, world: World, sharded: bool) -> str:
    index = i if sharded or world.size == 1 else world.rank + i * world.size
    return f"pair {index}" + ("" if world.size == 1 else f" (rank {world.rank})")


def _as_pair(pair: Any, i: int, world: World, sharded: bool) -> Pair:
    if isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(g, Graph) for g in pair):
        return pair[0], pair[1]
    got = type(pair).__name__ if not isinstance(pair, (tuple, list)) else \
        f"a {type(pair).__name__} of {[type(g).__name__ for g in pair]}"
    raise TypeError(f"{_where(i, world, sharded)} is {got}, expected a (clean, corrupted) pair of Graphs (a "
                    "DataLoader over pairs needs batch_size=None, so that it does not collate them)")
