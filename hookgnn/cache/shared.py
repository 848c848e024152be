"""Which activations a cache may hold as they are, without a copy.

``run_with_cache`` keeps the tensor each hook point produced, the one the forward goes on with,
so caching costs no copy per hook. A tensor that existed before the forward (the graph's
features, a parameter, a buffer) can reach a hook point unchanged, e.g. an identity encoder; a
cache must not share that one, or an in-place edit of the cache would edit the model or its
input. :func:`storages_before` lists where those tensors live, :func:`storage_of` where an
activation lives; the cache clones an activation whose storage is in the list.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from hookgnn.graph import Graph


def storage_of(t: Tensor) -> int | None:
    """Where ``t``'s storage starts (the same for all its views); ``None`` for a sparse or other
    non-strided tensor.

    >>> x = torch.zeros(4, 2)
    >>> storage_of(x[1:]) == storage_of(x), storage_of(x.to_sparse())
    (True, None)

    :param t: any tensor.
    """
    return t.untyped_storage().data_ptr() if t.layout == torch.strided else None


def storages_before(model: nn.Module, args: Sequence[Any], kwargs: dict[str, Any]) -> set[int]:
    """:func:`storage_of` every non-empty tensor that exists before ``model(*args, **kwargs)`` runs:
    its tensor arguments, the tensors of its :class:`~hookgnn.graph.Graph` arguments (features,
    indices, fields), the model's parameters and buffers.

    >>> g = Graph(x=torch.ones(2, 1), edge_index=torch.tensor([[0], [1]]))
    >>> storage_of(g.x) in storages_before(nn.Linear(1, 1), (g,), {})
    True

    :param model: the module about to run.
    :param args: its positional arguments.
    :param kwargs: its keyword arguments.
    """
    found = [*model.parameters(), *model.buffers()]
    for a in (*args, *kwargs.values()):
        if isinstance(a, Graph):
            found += [t for t in vars(a).values() if isinstance(t, Tensor)] + [f.value for f in a.fields.values()]
        elif isinstance(a, Tensor):
            found.append(a)
    return {p for p in (storage_of(t) for t in found if t.numel() > 0) if p is not None}
