"""Feature specs in the CLRS convention: stage, location and type of every named feature.

An algorithmic task describes each feature it produces with a :class:`FeatureSpec`:

* ``stage``: ``"input"``, ``"output"`` or ``"hint"`` (the algorithm's state per step);
* ``location``: ``"node"``, ``"edge"`` or ``"graph"``;
* ``type``: ``"scalar"``, ``"mask"``, ``"mask_one"``, ``"categorical"`` or ``"pointer"``.

How a feature is stored on a :class:`~hookgnn.graph.Graph` (field ``name``):

==============  ======================================  =============================
type            value                                   field location
==============  ======================================  =============================
scalar          float ``[n]``                           the feature's location
mask            0/1 float ``[n]``                       the feature's location
mask_one        0/1 float ``[n]``, one 1 per graph      the feature's location
categorical     one-hot float ``[n, dim]``              the feature's location
pointer (node)  0/1 float ``[E]``: edge ``u -> v`` is 1  ``"edge"``
                iff node ``v`` points to ``u``; one 1
                among the incoming edges of each node
pointer (edge)  int64 ``[E]``: edge ``i -> j`` holds    ``"edge"``
                ``k - ptr[g]``, the node ``k`` it points
                to, numbered within its graph ``g``
==============  ======================================  =============================

Hints carry a leading time axis ``[T, ...]`` (``Field.time``). Pointers are stored on
edges so that batching never has to renumber them: a pointer is a choice among a
node's incoming edges, and graphs carry self-loops so that a node can point to itself.
When several parallel edges ``u -> v`` exist, the pointer ``pi[v] = u`` goes on the
lowest-index one among those of minimum stored weight ``w``; for tasks without input
``w`` that is simply the lowest-index edge ``u -> v`` (see :mod:`hookgnn.tasks.base`).

Edge pointers (CLRS's ``Pi[i, j] = k`` of Floyd-Warshall: one node per edge) cannot be a
choice among a node's incoming edges, so an edge stores the target's index *within its
graph*; batching concatenates them unchanged (no renumbering either). A decoder scores
every edge against every node of the edge's graph (:func:`edge_pointer_slots`), giving
logits ``[E, K]`` with ``K`` the largest graph of the batch; slots past a graph's last
node hold :data:`EDGE_POINTER_PAD`, so a softmax over a row never picks them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from hookgnn.graph import Graph, Location

Stage = Literal["input", "output", "hint"]
FeatureType = Literal["scalar", "mask", "mask_one", "categorical", "pointer"]
FEATURE_TYPES: tuple[FeatureType, ...] = ("scalar", "mask", "mask_one", "categorical", "pointer")


@dataclass(frozen=True)
class FeatureSpec:
    """Where a feature lives and what kind of value it is.

    >>> FeatureSpec("output", "node", "pointer").field_location
    'edge'
    >>> FeatureSpec("input", "node", "categorical", dim=3).width
    3

    :param stage: ``"input"``, ``"output"`` or ``"hint"``.
    :param location: ``"node"``, ``"edge"`` or ``"graph"``.
    :param type: ``"scalar"``, ``"mask"``, ``"mask_one"``, ``"categorical"`` or ``"pointer"``.
    :param dim: number of categories of a ``"categorical"`` feature (1 otherwise).
    """

    stage: Stage
    location: Location
    type: FeatureType
    dim: int = 1

    def __post_init__(self) -> None:
        if self.type not in FEATURE_TYPES:
            raise ValueError(f"unknown feature type {self.type!r}; expected one of {FEATURE_TYPES}")
        if self.type == "pointer" and self.location not in ("node", "edge"):
            raise ValueError(f"pointer features live on nodes (a node points to a node) or edges (an edge "
                             f"points to a node), not on {self.location!r}")
        if self.type != "categorical" and self.dim != 1:
            raise ValueError(f"only categorical features have dim > 1, got dim={self.dim} for {self.type}")

    @property
    def field_location(self) -> Location:
        """The location of the stored field (pointers are stored on edges)."""
        return "edge" if self.type == "pointer" else self.location

    @property
    def width(self) -> int:
        """Number of columns the feature takes when used as a model input."""
        return self.dim


Spec = dict[str, FeatureSpec]

EDGE_POINTER_PAD = -1e9
"""The logit of an edge pointer's slot past its graph's last node (finite, so differences stay finite)."""


def is_edge_pointer(spec: FeatureSpec) -> bool:
    """Whether ``spec`` is a pointer stored per edge (an edge points to a node).

    >>> is_edge_pointer(FeatureSpec("output", "edge", "pointer")), is_edge_pointer(FeatureSpec("output", "node", "pointer"))
    (True, False)
    """
    return spec.type == "pointer" and spec.location == "edge"


def edge_pointer_slots(graph: Graph) -> tuple[Int[Tensor, "edge slot"], Bool[Tensor, "edge slot"]]:
    """The nodes an edge pointer may point to: slot ``k`` of edge ``e`` in graph ``g`` is node
    ``ptr[g] + k`` (``nodes``, clamped into range), ``valid`` while ``k < n_g``. ``K`` is the
    largest graph of the batch, so logits ``[E, K]`` cost ``O(E K)``.

    >>> g = Graph.collate([Graph(x=torch.zeros(1, 1), edge_index=torch.tensor([[0], [0]])),
    ...                    Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0], [1]]))])
    >>> nodes, valid = edge_pointer_slots(g)
    >>> nodes.tolist(), valid.tolist()
    ([[0, 1], [1, 2]], [[True, False], [True, True]])

    :param graph: the batch whose edges point to nodes of their own graph.
    """
    sizes = graph.ptr.diff()
    k = int(sizes.max()) if sizes.numel() else 0
    owner = graph.owner("edge")
    slot = torch.arange(k, device=graph.device)
    nodes = graph.ptr[owner].unsqueeze(1) + slot  # [E, K]
    valid = slot < sizes[owner].unsqueeze(1)
    return nodes.clamp(max=max(graph.num_nodes - 1, 0)), valid


def check_edge_pointer_target(name: str, target: Tensor, graph: Graph) -> Int[Tensor, " edge"]:
    """An edge pointer target ``[E]`` (in-graph node numbers) as int64, checked against the graph.

    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0], [1]]))
    >>> check_edge_pointer_target("Pi", torch.tensor([2]), g)
    Traceback (most recent call last):
    ...
    ValueError: edge pointer 'Pi': edge 0 points to node 2 of its graph, which has 2 nodes
    """
    if target.shape != (graph.num_edges,) or target.is_floating_point() and bool((target != target.round()).any()):
        raise ValueError(f"edge pointer {name!r}: the target must hold one in-graph node number per edge, shape "
                         f"[{graph.num_edges}], got {tuple(target.shape)} {target.dtype}")
    target = target.long()
    size = graph.ptr.diff()[graph.owner("edge")]
    bad = (target < 0) | (target >= size)
    if bool(bad.any()):
        e = int(bad.nonzero()[0])
        raise ValueError(f"edge pointer {name!r}: edge {e} points to node {int(target[e])} of its graph, which has "
                         f"{int(size[e])} nodes")
    return target
