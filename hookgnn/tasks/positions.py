"""CLRS's ``pos`` input: node positions that order the nodes for every tie rule.

A task numbers the nodes by the order of ``pos`` before running its algorithm and
numbers the results back (:meth:`hookgnn.tasks.base.Task.run_edges`), so "lowest index"
in an algorithm means "lowest ``pos``" and renumbering a graph's nodes together with
``pos`` renumbers every label.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float

from hookgnn.spec import FeatureSpec


def node_positions(num_nodes: int, pos: np.ndarray | None = None) -> Float[np.ndarray, " node"]:
    """CLRS's ``pos`` as stored: ``i / n`` by default, else ``pos`` checked and rounded to float32.

    >>> node_positions(4).tolist()
    [0.0, 0.25, 0.5, 0.75]
    >>> node_positions(2, np.array([0.5, 0.5]))
    Traceback (most recent call last):
    ...
    ValueError: pos must be distinct (it orders the nodes), but nodes 0 and 1 both have pos 0.5

    :param num_nodes: the number of nodes ``n``.
    :param pos: custom positions ``[n]`` (distinct: they order the nodes), or ``None`` for ``i / n``.
    """
    if pos is None:
        return (np.arange(num_nodes) / num_nodes).astype(np.float32)
    pos = np.asarray(pos)
    if pos.shape != (num_nodes,) or not (np.issubdtype(pos.dtype, np.floating) or np.issubdtype(pos.dtype, np.integer)):
        raise ValueError(f"pos must be real numbers of shape [{num_nodes}] (one per node), got {pos.dtype} {pos.shape}")
    with np.errstate(over="ignore"):
        p32 = pos.astype(np.float32)
    if not np.isfinite(p32).all():
        raise ValueError(f"pos of node {int(np.flatnonzero(~np.isfinite(p32))[0])} is not finite as float32")
    order = np.argsort(p32, kind="stable")
    tie = np.flatnonzero(p32[order][1:] == p32[order][:-1])
    if tie.size:
        a, b = sorted((int(order[tie[0]]), int(order[tie[0] + 1])))
        raise ValueError(f"pos must be distinct (it orders the nodes), but nodes {a} and {b} both have pos "
                         f"{float(p32[a])}")
    return p32


def unrank(fs: FeatureSpec, value: np.ndarray, rank: np.ndarray, order: np.ndarray) -> np.ndarray:
    """A raw feature computed on nodes numbered by rank, in the original numbering.

    Node features ``[..., n]`` are read at ``rank`` (node ``v`` is ``rank[v]`` there) and
    pointer values mapped back through ``order`` (rank ``r`` is node ``order[r]``).

    >>> rank, order = np.array([1, 0]), np.array([1, 0])  # two nodes, swapped
    >>> unrank(FeatureSpec("output", "node", "pointer"), np.array([0, 0]), rank, order).tolist()
    [1, 1]
    """
    if fs.location == "node":
        value = value[..., rank]
    if fs.type == "pointer":
        value = order[value.astype(np.int64)]
    return value
