"""The straight path from a base graph to a source graph that EAP-IG integrates along.

Shared by :mod:`hookgnn.attribution.gradients` and :mod:`hookgnn.attribution.streamed`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from hookgnn.graph import Field, Graph
from hookgnn.hooks import HookedRootModule


def interpolated_fields(model: HookedRootModule, base: Graph, src: Graph) -> list[str]:
    """The fields that EAP-IG interpolates besides ``x``, ``edge_attr`` and ``graph_attr``:
    those the model reads as floating inputs (``model.input_fields()``, e.g. ``s`` and
    ``pos`` of a wrapped SALSA-CLRS model) and that differ between the two graphs.

    Raises ``ValueError`` naming a field the model reads that differs but cannot be
    interpolated (not floating in both graphs, or of another shape).

    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0], [1]]))
    >>> from hookgnn import HookedRootModule
    >>> interpolated_fields(HookedRootModule(), g, g)  # a model that names no input fields
    []
    """
    declared = getattr(model, "input_fields", None)
    names = sorted(declared()) if callable(declared) else []
    out = []
    for name in names:
        a, b = base.fields.get(name), src.fields.get(name)
        if a is None or b is None:
            continue
        va, vb = a.value, b.value
        if va.shape == vb.shape and va.dtype == vb.dtype and torch.equal(va, vb):
            continue
        if not (va.is_floating_point() and vb.is_floating_point()) or va.shape != vb.shape:
            raise ValueError(f"the model reads field {name!r} as an input and it differs between the clean and "
                             f"corrupted graphs, but {tuple(va.shape)} {va.dtype} and {tuple(vb.shape)} {vb.dtype} "
                             "cannot be interpolated; EAP-IG needs floating inputs of one shape")
        out.append(name)
    return out


def interpolate(base: Graph, src: Graph, alpha: float, fields: Sequence[str] = ()) -> Graph:
    """The graph a fraction ``alpha`` of the way from ``base`` to ``src``: ``x``, ``edge_attr``,
    ``graph_attr`` and the named ``fields`` interpolated, :math:`b + \\alpha (s - b)`; the
    structure and every other field are ``base``'s.

    >>> a = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0], [1]]))
    >>> interpolate(a, a.replace(x=torch.ones(2, 1)), 0.25, []).x.flatten().tolist()
    [0.25, 0.25]
    """
    lerp = lambda a, b: None if a is None else a + alpha * (b - a)  # noqa: E731
    moved = {k: Field(lerp(base.fields[k].value, src.fields[k].value.to(base.fields[k].value.dtype)),
                      base.fields[k].location, base.fields[k].time) for k in fields}
    return base.replace(x=lerp(base.x, src.x), edge_attr=lerp(base.edge_attr, src.edge_attr),
                        graph_attr=lerp(base.graph_attr, src.graph_attr), fields={**base.fields, **moved})
