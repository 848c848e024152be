"""Clean/corrupted graph pairs for activation patching.

A corruption changes a task instance's *inputs* but never its structure: the corrupted
graph has the same ``edge_index`` and ``ptr`` as the clean one (checked by
:func:`corrupt`), so activations can be patched node-for-node and edge-for-edge. Where
the corrupted inputs are a valid instance, outputs and hints are recomputed by the
task's algorithm. Schemes (``CORRUPTIONS``), with their invariants:

``resample_source``
    A new source drawn uniformly among the *other* nodes: ``s`` differs from the clean
    source whenever the graph has ``>= 2`` nodes (else it is unchanged); ``w`` is
    unchanged. Needs a task with input ``s``.
``perturb_weights``
    ``mode="multiplicative"``: :math:`w' = w \\, e^{\\sigma \\varepsilon}`,
    :math:`\\varepsilon \\sim N(0, 1)` (signs kept, zero weights stay zero);
    ``mode="additive"``: :math:`w' = \\max(w + \\sigma \\varepsilon, 0)` (non-negative).
``resample_weights``
    Fresh weights uniform on ``[low, high)``.

    For both weight schemes: self-loops keep weight 0 and ``s`` is unchanged. On an
    undirected graph the ``k``-th edge ``u -> v`` and the ``k``-th edge ``v -> u`` get
    the same new weight (one draw per undirected edge, so the graph stays undirected);
    on a directed graph every arc gets its own draw, so each arc follows the law above
    on its own and antiparallel arcs are independent. A stored graph is undirected
    when its edges pair up like that with equal weights (:func:`is_undirected`); pass
    ``directed=True`` / ``False`` to say which it is. New weights are stored as float32
    and the labels computed on the stored values. Needs a task with input ``w``.
``zero_inputs``
    As in MINAR: ``x``, ``edge_attr`` and every input field set to 0. Outputs and hints
    are copied from the clean graph (a zero input is no valid instance, so ``s`` is no
    longer ``mask_one``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

from hookgnn.graph import Field, Graph
from hookgnn.tasks.base import Task
from hookgnn.tasks.samplers import SampledGraph, Seed, as_generator

Corruption = Callable[..., Graph]


def _require(task: Task, name: str, scheme: str) -> None:
    if name not in task.spec or task.spec[name].stage != "input":
        raise ValueError(f"{scheme} needs a task with input {name!r}; {task.name} has none")


def resample_source(task: Task, g: Graph, rng: np.random.Generator) -> Graph:
    """Rerun ``g`` from a source drawn uniformly among the nodes other than the clean one.

    >>> from hookgnn.tasks import get_task
    >>> bfs = get_task("bfs")
    >>> g = bfs.sample(1, "path", seed=0, n=2)
    >>> int(g["s"].argmax()) != int(resample_source(bfs, g, np.random.default_rng(0))["s"].argmax())
    True
    """
    _require(task, "s", "resample_source")
    old = int(g["s"].argmax())
    new = old
    if g.num_nodes >= 2:
        new = int(rng.integers(g.num_nodes - 1))
        new += new >= old
    return task.rerun(g, source=new)


def reverse_groups(edge_index: np.ndarray) -> np.ndarray:
    """A group id per edge: the ``k``-th ``u -> v`` and ``k``-th ``v -> u`` edge share one;
    self-loops get ``-1``.

    >>> reverse_groups(np.array([[0, 0, 1, 1], [0, 1, 0, 1]])).tolist()
    [-1, 0, 0, -1]
    """
    seen: dict[tuple[int, int], int] = {}
    ids: dict[tuple[int, int, int], int] = {}
    out = np.full(edge_index.shape[1], -1, dtype=np.int64)
    for e, (u, v) in enumerate(edge_index.T.tolist()):
        if u == v:
            continue
        k = seen.get((u, v), 0)
        seen[(u, v)] = k + 1
        out[e] = ids.setdefault((min(u, v), max(u, v), k), len(ids))
    return out


def is_undirected(edge_index: np.ndarray, weight: np.ndarray) -> bool:
    """Whether the stored edges pair up as undirected edges: in every :func:`reverse_groups`
    group one edge ``u -> v`` and one ``v -> u`` with equal weights.

    >>> ei = np.array([[0, 1, 0, 1], [0, 1, 1, 0]])
    >>> is_undirected(ei, np.array([0.0, 0.0, 0.5, 0.5])), is_undirected(ei, np.array([0.0, 0.0, 0.1, 0.9]))
    (True, False)
    """
    groups = reverse_groups(edge_index)
    arcs = groups >= 0
    if not arcs.any():
        return True
    size = np.bincount(groups[arcs])
    low = np.full(size.shape[0], np.inf)
    high = np.full(size.shape[0], -np.inf)
    np.minimum.at(low, groups[arcs], weight[arcs])
    np.maximum.at(high, groups[arcs], weight[arcs])
    return bool((size == 2).all() and (low == high).all())


def _reweight(task: Task, g: Graph, new_weight: Callable[[np.ndarray, int], np.ndarray], scheme: str,
              directed: bool | None) -> Graph:
    _require(task, "w", scheme)
    ei = g.edge_index.cpu().numpy()
    w = g["w"].double().cpu().numpy()
    undirected = is_undirected(ei, w)
    if directed is None:
        directed = not undirected
    elif not directed and not undirected:
        raise ValueError(f"{scheme}: directed=False but the graph is not undirected (some edge u -> v has no "
                         "reverse v -> u of equal weight)")
    if directed:  # one draw per arc
        groups = np.where(ei[0] != ei[1], np.cumsum(ei[0] != ei[1]) - 1, -1)
    else:
        groups = reverse_groups(ei)
    rep = np.zeros(groups.max() + 1 if groups.size else 0, dtype=np.int64)
    rep[groups[groups >= 0]] = np.flatnonzero(groups >= 0)  # one representative edge per group
    fresh = new_weight(w[rep], rep.shape[0])
    out = np.where(groups >= 0, fresh[np.maximum(groups, 0)] if rep.size else 0.0, 0.0)
    return task.rerun(g, weight=out)


def perturb_weights(task: Task, g: Graph, rng: np.random.Generator, scale: float = 0.1,
                    mode: str = "multiplicative", directed: bool | None = None) -> Graph:
    """Rerun ``g`` with noisy weights (log-normal factors or clipped additive noise), one
    draw per undirected edge or, on a directed graph, per arc (``directed=None``: ask
    :func:`is_undirected`).

    >>> from hookgnn.tasks import get_task
    >>> bf = get_task("bellman_ford")
    >>> g = bf.sample(1, "path", seed=0, n=3)
    >>> h = perturb_weights(bf, g, np.random.default_rng(0), scale=0.5)
    >>> bool((h["w"][:3] == 0).all()), bool((h["w"] != g["w"]).any())
    (True, True)
    """
    if mode == "multiplicative":
        return _reweight(task, g, lambda w, m: w * np.exp(scale * rng.standard_normal(m)), "perturb_weights",
                         directed)
    if mode == "additive":
        return _reweight(task, g, lambda w, m: np.maximum(w + scale * rng.standard_normal(m), 0.0),
                         "perturb_weights", directed)
    raise ValueError(f"mode must be 'multiplicative' or 'additive', got {mode!r}")


def resample_weights(task: Task, g: Graph, rng: np.random.Generator, low: float = 0.0, high: float = 1.0,
                     directed: bool | None = None) -> Graph:
    """Rerun ``g`` with fresh weights uniform on ``[low, high)``, one draw per undirected edge
    or, on a directed graph, per arc (``directed=None``: ask :func:`is_undirected`).

    >>> from hookgnn.tasks import get_task
    >>> bf = get_task("bellman_ford")
    >>> h = resample_weights(bf, bf.sample(1, "path", seed=0, n=3), np.random.default_rng(0), 5.0, 6.0)
    >>> bool((h["w"][3:] >= 5).all())
    True
    """
    return _reweight(task, g, lambda w, m: rng.uniform(low, high, size=m), "resample_weights", directed)


def zero_inputs(task: Task, g: Graph, rng: np.random.Generator) -> Graph:
    """``g`` with ``x``, ``edge_attr`` and the input fields zeroed; outputs and hints kept.

    >>> from hookgnn.tasks import get_task
    >>> bf = get_task("bellman_ford")
    >>> g = bf.sample(1, "path", seed=0, n=3)
    >>> h = zero_inputs(bf, g, np.random.default_rng(0))
    >>> float(h.x.abs().sum()), bool(torch.equal(h["d"], g["d"]))
    (0.0, True)
    """
    fields = {k: Field(torch.zeros_like(f.value), f.location, f.time)
              if k in task.spec and task.spec[k].stage == "input" else f for k, f in g.fields.items()}
    edge_attr = None if g.edge_attr is None else torch.zeros_like(g.edge_attr)
    return g.replace(x=torch.zeros_like(g.x), edge_attr=edge_attr, fields=fields)


CORRUPTIONS: dict[str, Corruption] = {
    "resample_source": resample_source,
    "perturb_weights": perturb_weights,
    "resample_weights": resample_weights,
    "zero_inputs": zero_inputs,
}


def corrupt(task: Task, clean: Graph, scheme: str | Corruption, seed: Seed = None,
            options: Mapping[str, Any] | None = None) -> Graph:
    """The corrupted version of a (batched) task graph; same ``edge_index`` and ``ptr``.

    ``scheme`` is a name in ``CORRUPTIONS`` or a function ``(task, graph, rng, **options)``
    acting on one graph. Equal seeds give equal corruptions.

    >>> from hookgnn.tasks import get_task
    >>> bf = get_task("bellman_ford")
    >>> clean = bf.sample(2, "weighted_path", seed=0, n=5)
    >>> bad = corrupt(bf, clean, "resample_source", seed=0)
    >>> clean["s"].reshape(2, 5).argmax(1).tolist(), bad["s"].reshape(2, 5).argmax(1).tolist()
    ([0, 0], [4, 3])
    """
    if isinstance(scheme, str):
        if scheme not in CORRUPTIONS:
            raise KeyError(f"unknown corruption {scheme!r}; known: {sorted(CORRUPTIONS)}")
        scheme = CORRUPTIONS[scheme]
    rng = as_generator(seed)
    out = Graph.collate([scheme(task, g, rng, **dict(options or {})) for g in clean.split()])
    if not (torch.equal(out.edge_index, clean.edge_index) and torch.equal(out.ptr, clean.ptr)):
        raise AssertionError("a corruption changed the graph structure (edge_index or ptr)")
    return out


def sample_pairs(task: Task, num_graphs: int, scheme: str | Corruption,
                 sampler: str | Callable[..., SampledGraph] = "erdos_renyi", seed: Seed = None,
                 options: Mapping[str, Any] | None = None, **sampler_kwargs: Any) -> tuple[Graph, Graph]:
    """A batch of clean task graphs and its corruption: ``(clean, corrupted)``.

    ``options`` go to the corruption scheme, ``sampler_kwargs`` to the sampler.

    >>> from hookgnn.tasks import get_task
    >>> clean, bad = sample_pairs(get_task("dijkstra"), 3, "perturb_weights", "grid", seed=0,
    ...                           options={"scale": 0.5}, rows=2, cols=3)
    >>> bool(torch.equal(clean.edge_index, bad.edge_index)), bool(torch.equal(clean["s"], bad["s"]))
    (True, True)
    """
    clean_rng, corrupt_rng = as_generator(seed).spawn(2)
    clean = task.sample(num_graphs, sampler, seed=clean_rng, **sampler_kwargs)
    return clean, corrupt(task, clean, scheme, seed=corrupt_rng, options=options)
