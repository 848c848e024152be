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
pointer (node,  int64 ``[n]``: node ``v`` holds          ``"node"``
``any_node``)   ``u - ptr[g]``, the node ``u`` it points
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

Node pointers to *any* node (``FeatureSpec(..., "node", "pointer", any_node=True)``:
topological sort's ``topo``, Kosaraju's ``scc_id``, Kruskal's union-find ``pi``, which
point to nodes that are no in-neighbours) are stored the same way, one in-graph node
number per node, so a trajectory of ``T`` steps costs ``T x n`` integers whatever the
graph's density; a decoder scores every node against every node of its graph
(:func:`pointer_slots`, logits ``[N, K]``, computed at decode time, never stored).
:func:`is_numbered_pointer` tells these two kinds from the edge-mask pointers.
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
    :param any_node: a node pointer that may point to any node of its graph, not only along
        an incoming edge: stored as the target's in-graph node number (module doc).
    """

    stage: Stage
    location: Location
    type: FeatureType
    dim: int = 1
    any_node: bool = False

    def __post_init__(self) -> None:
        if self.type not in FEATURE_TYPES:
            raise ValueError(f"unknown feature type {self.type!r}; expected one of {FEATURE_TYPES}")
        if self.type == "pointer" and self.location not in ("node", "edge"):
            raise ValueError(f"pointer features live on nodes (a node points to a node) or edges (an edge "
                             f"points to a node), not on {self.location!r}")
        if self.type != "categorical" and self.dim != 1:
            raise ValueError(f"only categorical features have dim > 1, got dim={self.dim} for {self.type}")
        if self.any_node and not (self.type == "pointer" and self.location == "node"):
            raise ValueError(f"any_node applies to node pointers only (an edge pointer always points to any node), "
                             f"got any_node=True for a {self.location} {self.type}")

    @property
    def field_location(self) -> Location:
        """The location of the stored field (node pointers along edges are stored on edges)."""
        if self.type == "pointer" and not self.any_node:
            return "edge"
        return self.location

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


def is_numbered_pointer(spec: FeatureSpec) -> bool:
    """Whether ``spec`` is a pointer stored as in-graph node numbers (an edge pointer, or a node
    pointer with ``any_node``), decoded as logits ``[items, K]`` over its graph's nodes.

    >>> is_numbered_pointer(FeatureSpec("output", "node", "pointer", any_node=True))
    True
    >>> is_numbered_pointer(FeatureSpec("output", "node", "pointer"))
    False

    :param spec: the feature's spec.
    """
    return spec.type == "pointer" and (spec.location == "edge" or spec.any_node)


def pointer_slots(graph: Graph, location: Literal["node", "edge"]
                  ) -> tuple[Int[Tensor, "item slot"], Bool[Tensor, "item slot"]]:
    """The nodes a numbered pointer at ``location`` may point to: slot ``k`` of item ``i`` (a node
    or an edge) in graph ``g`` is node ``ptr[g] + k`` (``nodes``, clamped into range), ``valid``
    while ``k < n_g``. ``K`` is the largest graph of the batch, so logits ``[items, K]`` cost
    ``O(items K)``.

    >>> g = Graph.collate([Graph(x=torch.zeros(1, 1), edge_index=torch.tensor([[0], [0]])),
    ...                    Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0], [1]]))])
    >>> nodes, valid = pointer_slots(g, "node")
    >>> nodes.tolist(), valid.tolist()
    ([[0, 1], [1, 2], [1, 2]], [[True, False], [True, True], [True, True]])

    :param graph: the batch whose items point to nodes of their own graph.
    :param location: ``"node"`` (node pointers with ``any_node``) or ``"edge"`` (edge pointers).
    """
    sizes = graph.ptr.diff()
    k = int(sizes.max()) if sizes.numel() else 0
    owner = graph.owner(location)
    slot = torch.arange(k, device=graph.device)
    nodes = graph.ptr[owner].unsqueeze(1) + slot  # [E, K]
    valid = slot < sizes[owner].unsqueeze(1)
    return nodes.clamp(max=max(graph.num_nodes - 1, 0)), valid


def edge_pointer_slots(graph: Graph) -> tuple[Int[Tensor, "edge slot"], Bool[Tensor, "edge slot"]]:
    """The nodes an edge pointer may point to: :func:`pointer_slots` of the edges.

    >>> g = Graph.collate([Graph(x=torch.zeros(1, 1), edge_index=torch.tensor([[0], [0]])),
    ...                    Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0], [1]]))])
    >>> nodes, valid = edge_pointer_slots(g)
    >>> nodes.tolist(), valid.tolist()
    ([[0, 1], [1, 2]], [[True, False], [True, True]])

    :param graph: the batch whose edges point to nodes of their own graph.
    """
    return pointer_slots(graph, "edge")


def check_edge_pointer_target(name: str, target: Tensor, graph: Graph,
                              location: Literal["node", "edge"] = "edge") -> Int[Tensor, " item"]:
    """A numbered pointer target ``[items]`` (in-graph node numbers) as int64, checked against the
    graph; ``location`` says whether the items are edges (edge pointers) or nodes (``any_node``).

    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0], [1]]))
    >>> check_edge_pointer_target("Pi", torch.tensor([2]), g)
    Traceback (most recent call last):
    ...
    ValueError: edge pointer 'Pi': edge 0 points to node 2 of its graph, which has 2 nodes

    :param name: the feature's name (for the error message).
    :param target: the stored target, one in-graph node number per item.
    :param graph: the batch the target belongs to.
    :param location: ``"edge"`` (edge pointers) or ``"node"`` (node pointers with ``any_node``).
    """
    items = graph.count(location)
    if target.shape != (items,) or target.is_floating_point() and bool((target != target.round()).any()):
        raise ValueError(f"{location} pointer {name!r}: the target must hold one in-graph node number per "
                         f"{location}, shape [{items}], got {tuple(target.shape)} {target.dtype}")
    target = target.long()
    size = graph.ptr.diff()[graph.owner(location)]
    bad = (target < 0) | (target >= size)
    if bool(bad.any()):
        e = int(bad.nonzero()[0])
        raise ValueError(f"{location} pointer {name!r}: {location} {e} points to node {int(target[e])} of its "
                         f"graph, which has {int(size[e])} nodes")
    return target
