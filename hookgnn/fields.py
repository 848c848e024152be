"""The parts of a :class:`~hookgnn.graph.Graph`: :class:`Field` (a named tensor at a location),
the checks of the constructor's arguments (errors that name the problem) and the union of fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

Location = Literal["node", "edge", "graph"]
LOCATIONS: tuple[Location, ...] = ("node", "edge", "graph")


@dataclass(frozen=True)
class Field:
    """A named tensor attached to a location of a :class:`Graph`.

    ``value`` has shape ``[n, ...]`` where ``n`` counts the location's items, or
    ``[T, n, ...]`` when ``time`` is true (a hint trajectory of T steps).
    """

    value: Tensor
    location: Location
    time: bool = False

    @property
    def item_dim(self) -> int:
        """The dimension that indexes nodes, edges or graphs."""
        return 1 if self.time else 0

    def to(self, device: torch.device | str) -> Field:
        """The same field with its value on ``device``."""
        return Field(self.value.to(device), self.location, self.time)


def check_edge_index(edge_index: Tensor, num_nodes: int) -> Tensor:
    """``edge_index`` as int64, after checking it is ``[2, E]``, integer and within ``num_nodes``."""
    if not isinstance(edge_index, Tensor) or edge_index.dim() != 2 or edge_index.shape[0] != 2:
        shape = tuple(edge_index.shape) if isinstance(edge_index, Tensor) else type(edge_index)
        raise ValueError(f"edge_index must have shape [2, E], got {shape}")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"edge_index must be an integer tensor, got dtype {edge_index.dtype}")
    edge_index = edge_index.long()
    if edge_index.numel():
        bad = (edge_index < 0) | (edge_index >= num_nodes)
        if bool(bad.any()):
            row, col = (int(i) for i in bad.nonzero()[0])
            raise ValueError(
                f"edge_index[{row}, {col}] = {int(edge_index[row, col])} is out of range "
                f"for {num_nodes} nodes"
            )
    return edge_index


def check_field(name: str, f: Any, count: Callable[[Location], int]) -> None:
    """A field of a graph: a :class:`Field` at a known location with ``count(location)`` items, finite."""
    if not isinstance(f, Field):
        raise ValueError(f"field {name!r} must be a Field, got {type(f).__name__}")
    if f.location not in LOCATIONS:
        raise ValueError(f"field {name!r} has unknown location {f.location!r}; expected {LOCATIONS}")
    want = count(f.location)
    if f.value.dim() <= f.item_dim or f.value.shape[f.item_dim] != want:
        raise ValueError(
            f"field {name!r} on {f.location}s has shape {tuple(f.value.shape)}; "
            f"dim {f.item_dim} must be {want} (the number of {f.location}s)"
        )
    if f.value.is_floating_point() and not bool(torch.isfinite(f.value).all()):
        kind = "NaN" if bool(torch.isnan(f.value).any()) else "±inf"
        raise ValueError(f"field {name!r} contains {kind} (fields must be finite)")


def check_features(name: str, t: Tensor | None, rows: int | None) -> None:
    """``x``, ``edge_attr`` or ``graph_attr``: 2-D, floating, finite, ``rows`` rows (when given)."""
    if t is None:
        if name == "x":
            raise ValueError("x (node features) is required; use torch.zeros(N, 0) for featureless nodes")
        return
    if not isinstance(t, Tensor) or t.dim() != 2:
        shape = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
        raise ValueError(f"{name} must be a 2-D tensor [rows, features], got {shape}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be floating point, got dtype {t.dtype}")
    if rows is not None and t.shape[0] != rows:
        raise ValueError(f"{name} has {t.shape[0]} rows but the graph has {rows}")
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        row, col = (int(i) for i in (~finite).nonzero()[0])
        raise ValueError(f"{name} contains {float(t[row, col])} (first in row {row}, column {col}); "
                         "features must be finite (no NaN or ±inf)")


def make_ptr(ptr: Tensor | None, batch: Tensor | None, num_nodes: int, device: torch.device) -> Tensor:
    """The node offsets ``[G + 1]`` from ``ptr`` or ``batch`` (one graph with neither), checked."""
    if ptr is not None and batch is not None:
        raise ValueError("pass ptr or batch, not both")
    for name, t in (("ptr", ptr), ("batch", batch)):
        if t is not None and (not isinstance(t, Tensor) or t.dtype not in (torch.int64, torch.int32)):
            got = t.dtype if isinstance(t, Tensor) else type(t).__name__
            raise ValueError(f"{name} must be an integer tensor (int64 or int32), got {got}")
    if batch is not None:
        if batch.shape != (num_nodes,):
            raise ValueError(f"batch must have shape [{num_nodes}], got {tuple(batch.shape)}")
        if batch.numel() and (bool((batch.diff() < 0).any()) or int(batch[0]) < 0):
            raise ValueError("batch must be sorted and non-negative (nodes of a graph are contiguous)")
        n_graphs = int(batch.max()) + 1 if batch.numel() else 1
        counts = torch.bincount(batch.long(), minlength=n_graphs)
        return torch.cat([counts.new_zeros(1), counts.cumsum(0)]).to(device)
    if ptr is None:
        return torch.tensor([0, num_nodes], device=device)
    ptr = ptr.long().to(device)
    if ptr.dim() != 1 or ptr.numel() < 2 or int(ptr[0]) != 0 or int(ptr[-1]) != num_nodes:
        raise ValueError(f"ptr must be [G + 1] running from 0 to {num_nodes}, got {ptr.tolist()}")
    if bool((ptr.diff() < 0).any()):
        raise ValueError(f"ptr must be non-decreasing, got {ptr.tolist()}")
    return ptr


def same_meta(a: Any, b: Any) -> bool:
    """Whether two meta values are equal (identity where ``==`` is not a truth value)."""
    if a is b:
        return True
    try:
        return bool(a == b)
    except (TypeError, ValueError, RuntimeError):
        return False


def cat_fields(fields: list[Field], name: str) -> Field:
    """One field of a union: the graphs' values concatenated along the item axis (time-major
    values of different lengths padded by repeating their last step)."""
    first = fields[0]
    if any(f.location != first.location or f.time != first.time for f in fields):
        raise ValueError(f"field {name!r} has different locations or time axes across graphs")
    values = [f.value for f in fields]
    if first.time:
        steps = max(v.shape[0] for v in values)
        values = [torch.cat([v, v[-1:].expand(steps - v.shape[0], *v.shape[1:])]) if v.shape[0] < steps else v
                  for v in values]
    return Field(torch.cat(values, dim=first.item_dim), first.location, first.time)
