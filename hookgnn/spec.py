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
pointer         0/1 float ``[E]``: edge ``u -> v`` is 1  ``"edge"``
                iff node ``v`` points to ``u``; one 1
                among the incoming edges of each node
==============  ======================================  =============================

Hints carry a leading time axis ``[T, ...]`` (``Field.time``). Pointers are stored on
edges so that batching never has to renumber them: a pointer is a choice among a
node's incoming edges, and graphs carry self-loops so that a node can point to itself.
When several parallel edges ``u -> v`` exist, the pointer ``pi[v] = u`` goes on the
lowest-index one among those of minimum stored weight ``w``; for tasks without input
``w`` that is simply the lowest-index edge ``u -> v`` (see :mod:`hookgnn.tasks.base`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hookgnn.graph import Location

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
        if self.type == "pointer" and self.location != "node":
            raise ValueError("pointer features live on nodes (a node points to a neighbour)")
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
