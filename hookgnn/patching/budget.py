"""How many copies of a graph fit one batched forward: chunk sizes from a memory budget.

Batched sweeps run ``k`` patched copies of the base graph in one disjoint union; their
memory grows with ``k``. :func:`copies_within` picks the largest ``k`` whose estimated
memory stays within ``max_memory`` bytes. One copy is estimated, from one forward
without gradients that records the bytes of every hook point's activation, as

.. math:: b = b_{graph} + b_{embed} + c \\max_t \\sum_{h \\in \\text{round } t} b_h

the graph's own tensors, the encodings that live through every round, and ``c = 3``
times the activations of the largest round (a round's intermediates that no hook point
sees, such as the concatenated inputs of a message MLP, are about as large again as
its hooked activations; the patched copy of one hook adds one more). The factor is
checked against measured peaks in ``benchmarks/bench_scaling.py``.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import torch
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule

#: Hooked activations of a round times this approximates its peak working memory (module docstring).
ROUND_FACTOR = 3
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def parse_bytes(value: int | float | str) -> int:
    """A memory size in bytes, from a number or a string such as ``"512MB"`` or ``"2 GiB"``.

    >>> parse_bytes("2GiB"), parse_bytes("1.5 kB"), parse_bytes(4096)
    (2147483648, 1500, 4096)
    """
    if isinstance(value, bool):
        raise TypeError("a memory size is a number of bytes or a string such as '2GiB', not a bool")
    if isinstance(value, (int, float)):
        size = float(value)
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
        if match is None or match.group(2).lower() not in _UNITS:
            raise ValueError(f"cannot read {value!r} as a memory size: write a number of bytes or e.g. '512MB', "
                             f"'2GiB' (units {sorted(u for u in _UNITS if u)})")
        size = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if size <= 0:
        raise ValueError(f"a memory size must be positive, got {value!r}")
    return int(size)


def _nbytes(t: Tensor | None) -> int:
    return 0 if t is None else t.numel() * t.element_size()


def bytes_per_copy(model: HookedRootModule, graph: Graph, **forward_kwargs: Any) -> int:
    """Estimated bytes one more copy of ``graph`` adds to a batched forward without gradients (module docstring).

    >>> from hookgnn import HookedGNN
    >>> model = HookedGNN("mpnn", 8, node_in=1, max_steps=2)
    >>> g = Graph(x=torch.randn(5, 1), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]))
    >>> bytes_per_copy(model, g) > 0
    True
    """
    per_round: dict[int, int] = {}
    outside = 0
    places = model.round_places

    def measure(t: Tensor, hook: Any) -> None:
        nonlocal outside
        place = places.get(hook.name)
        if place is None:
            outside += _nbytes(t)
        else:
            per_round[place[0]] = per_round.get(place[0], 0) + _nbytes(t)

    with torch.no_grad(), model.hooks(fwd_hooks=[(lambda name: True, measure)]):
        model(graph, **forward_kwargs)
    own = sum(_nbytes(t) for t in (graph.x, graph.edge_index, graph.edge_attr, graph.graph_attr, graph.ptr,
                                   graph.batch))
    return own + outside + ROUND_FACTOR * max(per_round.values(), default=0)


def copies_within(model: HookedRootModule, graph: Graph, max_memory: int | float | str, most: int,
                  **forward_kwargs: Any) -> int:
    """The most copies of ``graph`` (at most ``most``, at least 1) whose estimated forward fits ``max_memory``.

    Warns when not even one copy fits (it then runs one at a time).

    >>> from hookgnn import HookedGNN
    >>> model = HookedGNN("mpnn", 8, node_in=1, max_steps=2)
    >>> g = Graph(x=torch.randn(5, 1), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]))
    >>> one = bytes_per_copy(model, g)
    >>> copies_within(model, g, 10 * one, most=64), copies_within(model, g, 10 * one, most=4)
    (10, 4)
    """
    budget = parse_bytes(max_memory)
    one = bytes_per_copy(model, graph, **forward_kwargs)
    fit = budget // max(one, 1)
    if fit < 1:
        warnings.warn(f"max_memory={max_memory!r} ({budget} bytes) is less than one copy of the graph needs "
                      f"(about {one} bytes); patching one copy at a time", stacklevel=3)
    return int(max(1, min(most, fit)))
