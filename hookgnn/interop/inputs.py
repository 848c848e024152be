"""How a wrapped PyG model is called: a hookgnn :class:`~hookgnn.graph.Graph` mapped onto
the model's own ``forward`` arguments, and the model's float inputs as hook points.

A wrapped model is called like the original (``model(x, edge_index, edge_attr)``,
``model(data)``); patching code calls it with a :class:`~hookgnn.graph.Graph`, which
:func:`call_from_graph` turns into the original's arguments by parameter name:

==================  ====================================================================
``x``               ``graph.x``
``edge_index``      ``graph.edge_index``
``edge_attr``       ``graph.edge_attr``
``edge_weight``     the field ``edge_weight``, else ``graph.edge_attr[:, 0]`` (one column)
``batch``, ``ptr``  ``graph.batch``, ``graph.ptr``
``batch_size``,     ``graph.num_graphs``
``num_graphs``
``graph_attr``      ``graph.graph_attr``
any field name      ``graph[name]`` (``y``, masks, ... kept by ``Graph.from_pyg``)
==================  ====================================================================

A ``forward`` whose first parameter is not ``x`` and that has exactly one required
parameter (``forward(self, data)``) gets a PyG ``Batch`` with every field as an
attribute. Anything else: pass ``inputs=fn`` (``graph -> (args, kwargs)``) to
:func:`~hookgnn.interop.from_pyg`.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from hookgnn.graph import Graph
from hookgnn.interop.data import graph_to_pyg

CallArgs = tuple[tuple[Any, ...], dict[str, Any]]
InputsFn = Callable[[Graph], CallArgs]

#: The axis of an input tensor argument, by name (other inputs: chosen by their rows).
INPUT_AXIS = {"x": "node", "pos": "node", "edge_attr": "edge", "edge_weight": "edge"}


@dataclass(frozen=True)
class Counts:
    """Rows of the node, edge and graph axes of one call, and its ``edge_index`` (if found)."""

    nodes: int | None
    edges: int | None
    graphs: int
    edge_index: Tensor | None


def signature_of(model: nn.Module) -> inspect.Signature:
    """The signature of ``model.forward`` (without ``self``)."""
    return inspect.signature(model.forward)


def _is_data(obj: Any) -> bool:
    try:
        from torch_geometric.data import Data
        from torch_geometric.data.batch import Batch
    except ImportError:  # pragma: no cover - the interop package needs PyG
        return False
    return isinstance(obj, (Data, Batch))


def call_from_graph(sig: inspect.Signature, graph: Graph) -> CallArgs:
    """The ``(args, kwargs)`` that call a model with ``sig`` on ``graph`` (see the module doc).

    >>> import inspect
    >>> def forward(x, edge_index, edge_attr=None): ...
    >>> g = Graph(x=torch.ones(2, 1), edge_index=torch.tensor([[0], [1]]))
    >>> sorted(call_from_graph(inspect.signature(forward), g)[1])
    ['edge_attr', 'edge_index', 'x']
    """
    params = [p for p in sig.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    required = [p for p in params if p.default is p.empty]
    if params and params[0].name != "x" and len(required) == 1:
        return (graph_to_pyg(graph),), {}
    known: dict[str, Any] = {
        "x": graph.x, "edge_index": graph.edge_index, "edge_attr": graph.edge_attr, "batch": graph.batch,
        "ptr": graph.ptr, "batch_size": graph.num_graphs, "num_graphs": graph.num_graphs, "graph_attr": graph.graph_attr,
    }
    if "edge_weight" in graph.fields:
        known["edge_weight"] = graph["edge_weight"]
    elif graph.edge_attr is not None and graph.edge_attr.shape[1] == 1:
        known["edge_weight"] = graph.edge_attr[:, 0]
    kwargs: dict[str, Any] = {}
    for p in params:
        if p.name in graph.fields:
            kwargs[p.name] = graph[p.name]
        elif p.name in known:
            kwargs[p.name] = known[p.name]
        elif p.default is p.empty:
            raise TypeError(f"cannot call the wrapped model on a hookgnn Graph: forward needs {p.name!r}, which is "
                            f"neither a Graph attribute ({sorted(known)}) nor a field ({sorted(graph.fields)}); "
                            "pass inputs=fn (graph -> (args, kwargs)) to from_pyg")
    return (), kwargs


def bind(sig: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> inspect.BoundArguments:
    """``sig.bind`` with an error that names the wrapped model's parameters."""
    try:
        return sig.bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f"the wrapped model's forward{sig} cannot take these arguments: {e}") from None


def input_tensors(bound: inspect.BoundArguments) -> list[tuple[str, Tensor, str | None]]:
    """``(name, tensor, axis or None)`` of every floating-point input: tensor arguments, and
    every floating tensor attribute of a PyG ``Data`` argument (``x``, ``s``, ``pos``, ...;
    which of them the forward reads, the discovery forward finds out)."""
    out: list[tuple[str, Tensor, str | None]] = []
    for name, value in bound.arguments.items():
        if isinstance(value, Tensor) and value.is_floating_point():
            out.append((name, value, INPUT_AXIS.get(name)))
        elif _is_data(value):
            for key in value.keys():
                t = value[key]
                if isinstance(t, Tensor) and t.is_floating_point() and key not in bound.arguments:
                    out.append((key, t, _data_axis(value, key, t)))
    return out


def _data_axis(data: Any, key: str, t: Tensor) -> str | None:
    rows = t.shape[0] if t.dim() else None
    if rows is not None and rows == data.num_edges and data.is_edge_attr(key):
        return "edge"
    if rows is not None and rows == data.num_nodes and data.is_node_attr(key):
        return "node"
    return INPUT_AXIS.get(key)


def replace_inputs(bound: inspect.BoundArguments, new: dict[str, Tensor]) -> CallArgs:
    """The call with some inputs replaced (a ``Data`` argument is shallow-copied, never changed)."""
    for name, value in list(bound.arguments.items()):
        if name in new:
            bound.arguments[name] = new[name]
        elif _is_data(value) and any(k in new for k in value.keys()):
            value = copy.copy(value)
            for k in list(value.keys()):
                if k in new:
                    setattr(value, k, new[k])
            bound.arguments[name] = value
    return bound.args, bound.kwargs


def counts_of(bound: inspect.BoundArguments) -> Counts:
    """Node, edge and graph counts of a call, read from ``x`` / ``edge_index`` / ``batch``
    arguments or the attributes of a ``Data`` argument."""
    values = dict(bound.arguments)
    for value in bound.arguments.values():
        if _is_data(value):
            for a in ("x", "edge_index", "batch", "ptr"):
                if getattr(value, a, None) is not None:
                    values.setdefault(a, getattr(value, a))
    x, ei, batch, ptr = (values.get(k) for k in ("x", "edge_index", "batch", "ptr"))
    if not isinstance(x, Tensor):
        x = next((v for v in values.values() if isinstance(v, Tensor) and v.is_floating_point() and v.dim() == 2), None)
    if not (isinstance(ei, Tensor) and ei.dim() == 2 and ei.shape[0] == 2):
        ei = next((v for v in values.values() if isinstance(v, Tensor) and not v.is_floating_point()
                   and v.dim() == 2 and v.shape[0] == 2), None)
    graphs = 1
    if isinstance(ptr, Tensor) and ptr.dim() == 1:
        graphs = ptr.numel() - 1
    elif isinstance(batch, Tensor) and batch.dim() == 1 and batch.numel() and not batch.is_floating_point():
        graphs = int(batch.max()) + 1
    return Counts(None if x is None else x.shape[0], None if ei is None else ei.shape[1], graphs, ei)
