"""Interchange interventions over a dataset, on one process or many: the plain call's result, sharded.

::

    from hookgnn.causal import interchange_accuracy, output_iia
    from hookgnn.parallel import over_interventions
    r = over_interventions(interchange_accuracy, model, data, subspace)   # an IIAResult, as the plain call

IIA is a mean over interventions (not over pairs), so unlike :func:`~hookgnn.parallel.over_pairs`
nothing is averaged across ranks: with ``torch.distributed`` initialised, rank :math:`r` of
:math:`W` runs interventions :math:`r, r + W, r + 2W, \\dots` of ``data`` (its
:meth:`~hookgnn.causal.InterchangeData.subset`), every rank gathers the per-intervention
results of all ranks and puts them back in intervention order. Every rank returns exactly what
``fn(model, data, subspace, **kwargs)`` returns on one process (each intervention's flags do not
depend on which others share its forward). An error on one rank is raised on every rank.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from hookgnn.causal.interchange import IIAResult, InterchangeData
from hookgnn.causal.outputs import OutputIIA
from hookgnn.causal.subspaces import Subspace
from hookgnn.hooks import HookedRootModule
from hookgnn.parallel.world import World

_NODE_FIELDS = ("downstream", "correct", "base_correct", "unchanged")


def over_interventions(fn: Callable[..., Any], model: HookedRootModule, data: InterchangeData, subspace: Subspace, *,
                       world: World | None = None, **kwargs: Any) -> IIAResult | dict[str, OutputIIA]:
    """``fn(model, data, subspace, **kwargs)`` with the interventions of ``data`` shared among the ranks.

    ``fn`` is :func:`~hookgnn.causal.interchange_accuracy` (an :class:`~hookgnn.causal.IIAResult`)
    or :func:`~hookgnn.causal.output_iia` (a dict of :class:`~hookgnn.causal.OutputIIA`), or any
    function returning one of those for the interventions of the data it is given.

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.tasks import get_task
    >>> from hookgnn.causal import interchange_accuracy, interchange_data, random_interventions, task_pairs
    >>> from hookgnn.causal import whole_state
    >>> bf = get_task("bellman_ford")
    >>> _ = torch.manual_seed(0)
    >>> model = HookedGNN("mpnn", 8, node_in=2, edge_in=1, spec=bf.spec, max_steps=2)
    >>> pairs = task_pairs(bf, 3, seed=0, n=5, p=0.5)
    >>> data = interchange_data(bf, "d_h", pairs, random_interventions(pairs, [1, 2], seed=0))
    >>> got = over_interventions(interchange_accuracy, model, data, whole_state(8))
    >>> torch.equal(got.correct, interchange_accuracy(model, data, whole_state(8)).correct)
    True

    :param fn: the scorer, called as ``fn(model, share, subspace, **kwargs)`` with this rank's share of ``data``.
    :param model: the hooked model; it is not modified.
    :param data: the interventions and their counterfactuals (:func:`~hookgnn.causal.interchange_data`).
    :param subspace: the part of the node state that is swapped.
    :param world: the processes to share the interventions among (default: the current ``torch.distributed``
        world, or one process).
    :param kwargs: ``fn``'s keywords (``copies``, forward keywords such as ``steps=8``).
    """
    world = World.current() if world is None else world
    m = len(data.interventions)
    if m == 0:
        raise ValueError("no interventions to score: data.interventions is empty")
    mine = list(range(world.rank, m, world.size))
    result: Any = None
    error: BaseException | None = None
    try:
        if mine:
            result = fn(model, data.subset(mine), subspace, **kwargs)
            _check_result(result, len(mine))
    except Exception as err:  # noqa: BLE001 - re-raised on every rank below
        error = err
    world.agree(error, "running the interventions")
    shares = [(list(range(r, m, world.size)), res) for r, res in enumerate(world.gather(result)) if res is not None]
    if isinstance(shares[0][1], IIAResult):
        return _merge_iia(shares, m)
    return {name: _merge_outputs([(idx, res[name]) for idx, res in shares], m) for name in shares[0][1]}


def _check_result(result: Any, m: int) -> None:
    if isinstance(result, IIAResult):
        parts = {"steps": result.steps, "correct": result.correct, "informative": result.informative}
    elif isinstance(result, dict) and result and all(isinstance(v, OutputIIA) for v in result.values()):
        parts = {f"{k}.steps": v.steps for k, v in result.items()}
    else:
        raise TypeError(f"over_interventions takes a scorer that returns an IIAResult or a dict of OutputIIA "
                        f"(interchange_accuracy, output_iia); it returned a {type(result).__name__}")
    wrong = {k: tuple(v.shape) for k, v in parts.items() if tuple(v.shape) != (m,)}
    if wrong:
        raise ValueError(f"the scorer returned per-intervention fields of shapes {wrong} for {m} interventions")


def _merge_iia(shares: list[tuple[list[int], IIAResult]], m: int) -> IIAResult:
    first = shares[0][1]
    fields = {}
    for name in ("steps", "correct", "informative"):
        like = getattr(first, name)
        out = torch.empty(m, dtype=like.dtype)
        for idx, res in shares:
            out[idx] = getattr(res, name)
        fields[name] = out
    return IIAResult(first.hint, first.subspace, **fields)


def _merge_outputs(shares: list[tuple[list[int], OutputIIA]], m: int) -> OutputIIA:
    """Node rows of every share, ordered by global intervention (each intervention's rows kept in order)."""
    first = shares[0][1]
    steps = torch.empty(m, dtype=first.steps.dtype)
    owner: list[Tensor] = []
    for idx, res in shares:
        steps[idx] = res.steps
        owner.append(torch.tensor(idx, dtype=torch.long)[res.intervention])
    who = torch.cat(owner)
    order = torch.argsort(who, stable=True)
    rows = {f: torch.cat([getattr(res, f) for _, res in shares])[order] for f in _NODE_FIELDS}
    return OutputIIA(first.hint, first.subspace, first.output, steps, who[order], **rows)
