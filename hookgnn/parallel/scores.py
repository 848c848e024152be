"""Deprecated 0.1 dataset-level wrappers: each is :func:`~hookgnn.parallel.pairs.over_pairs` of its scorer.

``parallel.eap(model, pairs, metric, ...)`` is now ``over_pairs(eap, model, pairs, metric, ...)``:
one function applies any scorer over (clean, corrupted) pairs, with the mean-over-pairs and
sharding rules of :mod:`hookgnn.parallel.pairs`. Each wrapper below warns
(``DeprecationWarning``) with that spelling and returns exactly what it returns.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from hookgnn._deprecated import warn_deprecated
from hookgnn.attribution import gradients as _attribution
from hookgnn.attribution.atp_star import atp_star as _atp_star
from hookgnn.hooks import HookedRootModule, NameFilter
from hookgnn.metrics.per_graph import Metric
from hookgnn.parallel.pairs import Pair, mean_of, over_pairs
from hookgnn.parallel.world import World
from hookgnn.patching.activation import patch as _patch
from hookgnn.patching.results import DEFAULT_DIRECTION, Attribution, Direction, EdgeScores, HookScores, Keep
from hookgnn.patching.selectors import Selection, messages

__all__ = ["Pair", "activation_sweep", "atp_star", "attribution_patch", "eap", "integrated_gradients",
           "mean_over_pairs", "message_sweep"]


def mean_over_pairs(
    fn: Callable[..., Any],
    model: HookedRootModule,
    pairs: Iterable[Any],
    metric: Metric,
    *args: Any,
    world: World | None = None,
    sharded: bool = False,
    **kwargs: Any,
) -> Any:
    """Deprecated: ``over_pairs(fn, model, pairs, metric, **kwargs)`` (pass ``fn``'s arguments by keyword)."""
    warn_deprecated("parallel.mean_over_pairs", "parallel.over_pairs(fn, model, pairs, metric, **kwargs)")
    return mean_of(fn, model, pairs, metric, args, kwargs, world, sharded)


def attribution_patch(
    model: HookedRootModule,
    pairs: Iterable[Any],
    metric: Metric,
    names_filter: NameFilter = None,
    direction: Direction = DEFAULT_DIRECTION,
    keep: Keep = "entries",
    offload: str | os.PathLike[str] | None = None,
    *,
    world: World | None = None,
    sharded: bool = False,
    **forward_kwargs: Any,
) -> Attribution:
    """Deprecated: ``over_pairs(attribute, model, pairs, metric, keep="entries")``."""
    warn_deprecated("parallel.attribution_patch", 'parallel.over_pairs(attribute, model, pairs, metric, keep="entries")')
    return over_pairs(_attribution.attribute, model, pairs, metric, names_filter=names_filter, direction=direction,
                      keep=keep, offload=offload, world=world, sharded=sharded, **forward_kwargs)


def integrated_gradients(
    model: HookedRootModule,
    pairs: Iterable[Any],
    metric: Metric,
    ig_steps: int = 16,
    names_filter: NameFilter = None,
    direction: Direction = DEFAULT_DIRECTION,
    keep: Keep = "entries",
    *,
    world: World | None = None,
    sharded: bool = False,
    **kwargs: Any,
) -> Attribution:
    """Deprecated: ``over_pairs(attribute, model, pairs, metric, ig_steps=16, keep="entries")``."""
    warn_deprecated("parallel.integrated_gradients",
                    'parallel.over_pairs(attribute, model, pairs, metric, ig_steps=16, keep="entries")')
    return over_pairs(_attribution.attribute, model, pairs, metric, ig_steps=ig_steps, names_filter=names_filter,
                      direction=direction, keep=keep, world=world, sharded=sharded, **kwargs)


def eap(
    model: HookedRootModule,
    pairs: Iterable[Any],
    metric: Metric,
    ig_steps: int = 0,
    direction: Direction = DEFAULT_DIRECTION,
    level: _attribution.EdgeLevel = "all",
    *,
    world: World | None = None,
    sharded: bool = False,
    **kwargs: Any,
) -> EdgeScores:
    """Deprecated: ``over_pairs(eap, model, pairs, metric, ...)``."""
    warn_deprecated("parallel.eap", "parallel.over_pairs(eap, model, pairs, metric, ...)")
    return over_pairs(_attribution.eap, model, pairs, metric, ig_steps=ig_steps, direction=direction, level=level,
                      world=world, sharded=sharded, **kwargs)


def atp_star(
    model: HookedRootModule,
    pairs: Iterable[Any],
    metric: Metric,
    *,
    world: World | None = None,
    sharded: bool = False,
    **kwargs: Any,
) -> HookScores:
    """Deprecated: ``over_pairs(atp_star, model, pairs, metric, ...)``."""
    warn_deprecated("parallel.atp_star", "parallel.over_pairs(atp_star, model, pairs, metric, ...)")
    return over_pairs(_atp_star, model, pairs, metric, world=world, sharded=sharded, **kwargs)


def activation_sweep(
    model: HookedRootModule,
    pairs: Iterable[Any],
    metric: Metric,
    hooks: Sequence[str],
    *,
    world: World | None = None,
    sharded: bool = False,
    **kwargs: Any,
) -> HookScores:
    """Deprecated: ``over_pairs(patch, model, pairs, metric, components=hooks(model, names))``."""
    warn_deprecated("parallel.activation_sweep",
                    "parallel.over_pairs(patch, model, pairs, metric, components=hooks(model, names))")
    if not hooks:
        raise ValueError("no hooks to sweep")
    selection = Selection(tuple(hooks), kwargs.pop("over", "row"))
    return over_pairs(_patch, model, pairs, metric, components=selection, world=world, sharded=sharded, **kwargs)


def message_sweep(
    model: HookedRootModule,
    pairs: Iterable[Any],
    metric: Metric,
    *,
    world: World | None = None,
    sharded: bool = False,
    **kwargs: Any,
) -> HookScores:
    """Deprecated: ``over_pairs(patch, model, pairs, metric, components=messages(model))``."""
    warn_deprecated("parallel.message_sweep",
                    "parallel.over_pairs(patch, model, pairs, metric, components=messages(model, rounds))")
    selection = messages(model, kwargs.pop("rounds", None))
    return over_pairs(_patch, model, pairs, metric, components=selection, world=world, sharded=sharded, **kwargs)
