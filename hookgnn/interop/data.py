"""PyTorch Geometric data <-> hookgnn :class:`~hookgnn.graph.Graph`, keeping every attribute."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from hookgnn.graph import Field, Graph, register_converter

_STRUCTURE = ("x", "edge_index", "edge_attr", "batch", "ptr", "num_nodes")


def graph_from_pyg(data: Any) -> Graph:
    """A :class:`Graph` from a PyG ``Data`` or ``Batch``.

    ``x``, ``edge_index``, ``edge_attr`` (a 1-D one becomes one column) and ``ptr`` /
    ``batch`` give the graph (features as float32, as before); every other tensor
    attribute (``y``, masks, ``edge_weight``, ``reachable``, ...) becomes a :class:`Field`,
    on edges or nodes as PyG's ``is_edge_attr`` / ``is_node_attr`` say, else on graphs
    when it has a row per graph (a 0-d tensor of a single graph counts as one row), with
    its own dtype. Tensors that fit no location are left out; attributes that are not
    tensors (SALSA-CLRS's lists ``inputs`` / ``outputs`` / ``hints``, names) go to
    ``Graph.meta`` as they are, so a ``forward(data)`` model that reads them runs on the graph.

    >>> from torch_geometric.data import Data
    >>> d = Data(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]), w=torch.ones(2), s=torch.tensor(1))
    >>> g = graph_from_pyg(d)
    >>> sorted((k, f.location) for k, f in g.fields.items())
    [('s', 'graph'), ('w', 'edge')]
    >>> d.inputs = ["w"]
    >>> graph_from_pyg(d).meta
    {'inputs': ['w']}
    """
    ptr = getattr(data, "ptr", None)
    batch = getattr(data, "batch", None) if ptr is None else None
    x = data.x if data.x is not None else torch.zeros(data.num_nodes, 0)
    edge_attr = data.edge_attr
    if edge_attr is not None and edge_attr.dim() == 1:
        edge_attr = edge_attr.unsqueeze(-1)
    if ptr is not None:
        num_graphs = ptr.numel() - 1
    else:
        num_graphs = int(batch.max()) + 1 if batch is not None and batch.numel() else 1
    fields: dict[str, Field] = {}
    meta: dict[str, Any] = {}
    for key in data.keys():
        value = data[key]
        if key in _STRUCTURE:
            continue
        if not isinstance(value, Tensor):
            meta[key] = value
            continue
        rows = value.shape[0] if value.dim() else None
        if rows == data.num_edges and data.is_edge_attr(key):
            fields[key] = Field(value, "edge")
        elif rows == x.shape[0] and data.is_node_attr(key):
            fields[key] = Field(value, "node")
        elif rows == num_graphs:
            fields[key] = Field(value, "graph")
        elif rows is None and num_graphs == 1:
            fields[key] = Field(value.reshape(1), "graph")
    return Graph(x=x.float(), edge_index=data.edge_index, edge_attr=None if edge_attr is None else edge_attr.float(),
                 ptr=ptr, batch=batch, fields=fields, meta=meta)


def graph_to_batch(graph: Graph) -> Any:
    """A PyG ``Batch`` of one ``Data`` per graph; fields without a time axis become attributes,
    and so does ``graph.meta`` (set on the batch as a whole, as SALSA-CLRS's collater does)."""
    from torch_geometric.data import Batch, Data

    batch = Batch.from_data_list(
        [Data(x=g.x, edge_index=g.edge_index, edge_attr=g.edge_attr,
              **{k: f.value for k, f in g.fields.items() if not f.time}) for g in graph.split()]
    )
    for key, value in graph.meta.items():
        setattr(batch, key, value)
    return batch


def graph_to_pyg(graph: Graph) -> Any:
    """One PyG ``Batch`` holding the whole disjoint union as it is (no split), with
    ``batch``, ``ptr``, every field and every ``meta`` entry as attributes (what a
    ``forward(data)`` model gets).

    >>> g = Graph(x=torch.ones(2, 1), edge_index=torch.tensor([[0], [1]]))
    >>> graph_to_pyg(g).num_graphs
    1
    """
    from torch_geometric.data import Batch

    attrs: dict[str, Any] = {"x": graph.x, "edge_index": graph.edge_index, "batch": graph.batch, "ptr": graph.ptr}
    if graph.edge_attr is not None:
        attrs["edge_attr"] = graph.edge_attr
    if graph.graph_attr is not None:
        attrs["graph_attr"] = graph.graph_attr
    attrs.update({k: f.value for k, f in graph.fields.items() if k not in attrs})
    attrs.update({k: v for k, v in graph.meta.items() if k not in attrs})
    return Batch(**attrs)


register_converter("from_pyg", graph_from_pyg)
register_converter("to_pyg", graph_to_batch)
register_converter("to_pyg_union", graph_to_pyg)
