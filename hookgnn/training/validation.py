"""Checks of training and evaluation arguments: one :class:`ConfigError` naming the field and value.

Every check returns the value in plain form (``int``, ``float``, ``bool``, ``str``,
tuples), so that a checked config pickles under ``torch.load(weights_only=True)``.
:class:`~hookgnn.training.config.TrainConfig` runs them all in ``__post_init__``; the
command line runs the same ones and prints their message after the option's name.

>>> check_int("steps", 10, low=0)
10
>>> check_int("steps", -5, low=0)
Traceback (most recent call last):
...
hookgnn.training.validation.ConfigError: steps=-5: must be an integer >= 0
"""

from __future__ import annotations

import difflib
import inspect
import math
import numbers
from collections.abc import Collection, Mapping
from typing import Any

from hookgnn.tasks.samplers import SAMPLERS

#: Round-count policies: ``"hints"`` runs ``max(num_steps) - 1`` rounds (one per recorded
#: algorithm step, the CLRS convention), ``"nodes"`` runs ``max graph size - 1`` rounds
#: (enough for Bellman-Ford on any graph, as in MINAR). An ``int`` is a fixed count.
ROUND_POLICIES = ("hints", "nodes")


class ConfigError(ValueError):
    """A bad argument value: ``field`` (its name), ``value`` (what was given), ``problem`` (what is wrong).

    ``key`` names the entry of a dict-valued field (e.g. ``"p"`` of ``sampler_kwargs``).

    >>> err = ConfigError("lr", -1.0, "must be > 0")
    >>> str(err), isinstance(err, ValueError)
    ('lr=-1.0: must be > 0', True)
    """

    def __init__(self, field: str, value: Any, problem: str, key: str | None = None) -> None:
        self.field, self.value, self.problem, self.key = field, value, problem, key
        super().__init__(f"{field}={value!r}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.field, self.value, self.problem, self.key)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(field: str, value: Any, low: int | None = None) -> int:
    """``value`` as an ``int`` (bools and floats refused), at least ``low`` when given."""
    if not _is_int(value) or (low is not None and value < low):
        raise ConfigError(field, value, "must be an integer" + ("" if low is None else f" >= {low}"))
    return int(value)


def check_float(field: str, value: Any, low: float = -math.inf, high: float = math.inf,
                low_open: bool = False) -> float:
    """``value`` as a finite ``float`` in ``[low, high]`` (``(low, high]`` with ``low_open``).

    >>> check_float("lr", 1, low=0.0, low_open=True)
    1.0
    """
    if high < math.inf:
        bound = f"in [{low:g}, {high:g}]"
    else:
        bound = f"{'>' if low_open else '>='} {low:g}" if low > -math.inf else ""
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value):
        raise ConfigError(field, value, "must be a finite number" + (f" {bound}" if bound else ""))
    if value < low or (low_open and value == low) or value > high:
        raise ConfigError(field, value, f"must be {bound}")
    return float(value)


def check_bool(field: str, value: Any) -> bool:
    """``value`` if it is a ``bool`` (``0`` / ``1`` / strings refused)."""
    if not isinstance(value, bool):
        raise ConfigError(field, value, "must be True or False")
    return value


def check_choice(field: str, value: Any, choices: Collection[str], what: str | None = None) -> str:
    """``value`` if it is one of ``choices``; otherwise the error suggests close names.

    >>> check_choice("sampler", "erdos_reny", ["erdos_renyi", "path"])
    Traceback (most recent call last):
    ...
    hookgnn.training.validation.ConfigError: sampler='erdos_reny': unknown sampler; did you mean 'erdos_renyi'? known: erdos_renyi, path
    """
    if isinstance(value, str) and value in choices:
        return value
    close = difflib.get_close_matches(value, list(choices), n=3, cutoff=0.6) if isinstance(value, str) else []
    hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
    raise ConfigError(field, value, f"unknown {what or field}; {hint}known: {', '.join(sorted(choices))}")


def check_rounds(value: Any, field: str = "rounds") -> int | str:
    """A round policy of :data:`ROUND_POLICIES` or a fixed count >= 1.

    >>> check_rounds("nodes"), check_rounds(3)
    ('nodes', 3)
    """
    if isinstance(value, str) and value in ROUND_POLICIES:
        return value
    if _is_int(value) and value >= 1:
        return int(value)
    raise ConfigError(field, value, f"must be an integer >= 1 or one of {', '.join(ROUND_POLICIES)}")


def plain(value: Any, field: str, key: str | None = None) -> Any:
    """``value`` as plain data (``None``, bool, int, float, str and tuples of them).

    Numpy scalars become Python numbers and lists tuples; anything else (callables, arrays, objects) is
    refused, because a checkpoint holding it would not load with ``weights_only=True``.

    >>> plain([0, 2.5], "sampler_kwargs", "weights")
    (0, 2.5)
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (tuple, list)):
        return tuple(plain(v, field, key) for v in value)
    raise ConfigError(field, value, f"{type(value).__name__} values cannot be saved in a checkpoint; use "
                                    "numbers, strings or tuples of them", key)


def sampler_parameters(sampler: str) -> list[str]:
    """Keyword arguments of the sampler called ``sampler`` (``seed`` left out).

    >>> sampler_parameters("grid")
    ['rows', 'cols', 'weights']
    """
    return [p for p in inspect.signature(SAMPLERS[sampler]).parameters if p != "seed"]


def check_sampler_args(sampler: Any, size_arg: Any, kwargs: Any) -> dict[str, Any]:
    """Check a sampler name, the argument that takes the graph size, and the other arguments.

    Returns ``kwargs`` as a plain ``dict``; the values themselves are checked by drawing
    graphs (see :meth:`TrainConfig.validate <hookgnn.training.config.TrainConfig.validate>`).

    >>> check_sampler_args("grid", "rows", {"cols": 3})
    {'cols': 3}
    >>> check_sampler_args("path", "n", {"p": 0.5})
    Traceback (most recent call last):
    ...
    hookgnn.training.validation.ConfigError: sampler_kwargs={'p': 0.5}: sampler 'path' takes no argument 'p' (it takes n, weights)
    """
    check_choice("sampler", sampler, SAMPLERS)
    params = sampler_parameters(sampler)
    if not isinstance(size_arg, str) or size_arg not in params:
        raise ConfigError("size_arg", size_arg, f"sampler {sampler!r} takes the graph size as one of {params}")
    if not isinstance(kwargs, Mapping):
        raise ConfigError("sampler_kwargs", kwargs, "must be a dict of sampler arguments")
    out = {}
    for key, value in kwargs.items():
        if key == size_arg or key == "seed":
            source = "sizes" if key == size_arg else "seed"
            raise ConfigError("sampler_kwargs", dict(kwargs), f"{key!r} comes from {source}, not from the "
                                                              "sampler arguments", key)
        if key not in params:
            raise ConfigError("sampler_kwargs", dict(kwargs), f"sampler {sampler!r} takes no argument {key!r} "
                                                              f"(it takes {', '.join(params)})", key)
        out[key] = plain(value, "sampler_kwargs", key)
    return out


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (or its type's name when it has none).

    >>> first_line(ValueError("p must lie in [0, 1]\\nmore detail"))
    'p must lie in [0, 1]'
    """
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__
