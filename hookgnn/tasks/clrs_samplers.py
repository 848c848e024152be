"""CLRS-30's graph distributions, by name: the graphs behind published NAR numbers.

Each function follows ``clrs/_src/samplers.py`` of dm-clrs 2.0.3 (Veličković et al.,
"The CLRS Algorithmic Reasoning Benchmark", 2022); the numbers below come from there:

* :func:`clrs_erdos_renyi` is CLRS's ``_random_er_graph``: an ``n x n`` matrix of
  independent Bernoulli(``p``) entries. *Undirected*: the matrix is multiplied by its
  transpose, so an edge ``{i, j}`` appears with probability ``p^2`` (not ``p``) and
  node ``i`` has a self-loop with probability ``p`` (the diagonal of ``A``).
  *Directed*: every arc ``i -> j`` (self-loops included) with probability ``p``.
  *Acyclic* (a DAG): the strict upper triangle, then the nodes permuted at random.
  *Weighted*: weights uniform on ``[low, high)``, and for an undirected graph
  :math:`w_{ij} = \\sqrt{u_{ij} u_{ji} + 10^{-3}}` (``u`` uniform), as CLRS does.
* :func:`clrs_community` is ``_random_community_graph``: ``k = 4`` blocks of ``n // k``
  nodes (the last takes the rest), each an Erdős–Rényi graph as above, then every
  entry of a second graph drawn with ``p = eps = 0.01`` *toggles* an edge (adds it if
  absent, removes it if present), except entries from a later block to an earlier
  one, and the nodes are permuted at random.
* ``CLRS_SAMPLERS["clrs_<algorithm>"]`` is the sampler CLRS uses for that algorithm
  (``SAMPLERS`` at the end of CLRS's file), with its defaults:

  ======================================  ======================================================
  algorithms                              graph
  ======================================  ======================================================
  dfs                                     directed, ``p = 0.5``
  bfs                                     undirected, ``p = 0.5``, random source
  topological_sort                        DAG, ``p = 0.5``
  articulation_points, bridges            undirected, ``p = 0.2``
  mst_kruskal                             undirected, ``p = 0.2``, weights ``[0, 1)``
  mst_prim, bellman_ford, dijkstra        undirected, ``p = 0.5``, weights ``[0, 1)``, source
  dag_shortest_paths                      DAG, ``p = 0.5``, weights ``[0, 1)``, source
  floyd_warshall                          undirected, ``p = 0.5``, weights ``[0, 1)``
  strongly_connected_components           directed 4-community graph, ``p = 0.5``, ``eps = 0.01``
  ======================================  ======================================================

CLRS-30 trains on ``n = 16`` and tests on ``n = 64`` (``CLRS30`` in the same file);
``n`` defaults to 16 here. Self-loops on the diagonal are kept in the
:class:`SampledGraph` (the tasks store one self-loop per node anyway, so they change no
label). Random streams are numpy ``Generator`` s, so the graphs follow CLRS's
distributions, not its exact draws. As in CLRS, an entry of ``A`` equal to 0 is no edge.

>>> g = clrs_sampler("dijkstra")(n=16, seed=0)
>>> g.num_nodes, g.directed, g.source is not None, bool((g.weight > 0).all())
(16, False, True, True)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
from jaxtyping import Float

from hookgnn.tasks.samplers import SampledGraph, Seed, as_generator


def er_matrix(rng: np.random.Generator, n: int, p: float, directed: bool, acyclic: bool, weighted: bool,
              low: float, high: float) -> Float[np.ndarray, "n n"]:
    """CLRS's ``_random_er_graph`` as a dense matrix ``A`` (0: no edge; see the module doc).

    >>> A = er_matrix(np.random.default_rng(0), 5, 1.0, directed=False, acyclic=False, weighted=False,
    ...               low=0.0, high=1.0)
    >>> A.tolist() == np.ones((5, 5)).tolist()  # p = 1: every pair and every self-loop
    True
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must lie in [0, 1], got {p}")
    mat = (rng.random((n, n)) < p).astype(np.float64)
    if not directed:
        mat *= mat.T
    elif acyclic:
        mat = np.triu(mat, k=1)
        perm = rng.permutation(n)
        mat = mat[perm][:, perm]
    if weighted:
        w = rng.uniform(low, high, size=(n, n))
        if not directed:
            w = np.sqrt(w * w.T + 1e-3)
        mat = mat * w
    return mat


def community_matrix(rng: np.random.Generator, n: int, k: int, p: float, eps: float, directed: bool,
                     weighted: bool, low: float, high: float) -> Float[np.ndarray, "n n"]:
    """CLRS's ``_random_community_graph``: ``k`` Erdős–Rényi blocks, ``eps``-toggled, nodes permuted.

    >>> A = community_matrix(np.random.default_rng(0), 8, 4, 1.0, 0.0, True, False, 0.0, 1.0)
    >>> int((A > 0).sum())  # four complete 2-node blocks with self-loops, nothing between them
    16
    """
    if not 1 <= k <= n:
        raise ValueError(f"cannot split {n} nodes into k={k} communities")
    mat = np.zeros((n, n))
    bounds = [i * (n // k) for i in range(k)] + [n]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        mat[lo:hi, lo:hi] = er_matrix(rng, hi - lo, p, directed, False, weighted, low, high)
    toggle = er_matrix(rng, n, eps, directed, False, weighted, low, high)
    for i in range(k):
        for j in range(i):  # no toggles from a later block to an earlier one: no new cycles
            toggle[bounds[i]:bounds[i + 1], bounds[j]:bounds[j + 1]] = 0.0
    mat = np.where(toggle > 0.0, (1.0 - (mat > 0.0)) * toggle, mat)
    perm = rng.permutation(n)
    return mat[perm][:, perm]


def from_matrix(A: np.ndarray, directed: bool, source: int | None = None) -> SampledGraph:
    """The :class:`SampledGraph` of a dense ``A`` (non-zero entries are edges, the diagonal self-loops).

    >>> from_matrix(np.array([[0.0, 0.5], [0.5, 1.0]]), directed=False).src.tolist()
    [0, 1]
    """
    u, v = np.nonzero(A if directed else np.triu(A))
    return SampledGraph(A.shape[0], u, v, A[u, v], directed=directed, source=source)


def clrs_erdos_renyi(n: int = 16, p: float = 0.5, *, directed: bool = False, acyclic: bool = False,
                     weighted: bool = False, low: float = 0.0, high: float = 1.0, with_source: bool = False,
                     seed: Seed = None) -> SampledGraph:
    """CLRS's Erdős–Rényi graph (module doc); ``with_source`` draws a source after the graph, as CLRS does.

    >>> g = clrs_erdos_renyi(6, 1.0, seed=0)
    >>> g.num_edges  # 15 pairs and 6 self-loops
    21
    """
    if acyclic and not directed:
        raise ValueError("acyclic=True needs directed=True (CLRS's DAGs are directed)")
    rng = as_generator(seed)
    A = er_matrix(rng, n, p, directed, acyclic, weighted, low, high)
    return from_matrix(A, directed, int(rng.choice(n)) if with_source else None)


def clrs_community(n: int = 16, k: int = 4, p: float = 0.5, eps: float = 0.01, *, directed: bool = True,
                   weighted: bool = False, low: float = 0.0, high: float = 1.0, seed: Seed = None) -> SampledGraph:
    """CLRS's perturbed ``k``-community graph (module doc); directed by default, as for SCC.

    >>> clrs_community(8, seed=0).num_nodes
    8
    """
    A = community_matrix(as_generator(seed), n, k, p, eps, directed, weighted, low, high)
    return from_matrix(A, directed)


_ER = clrs_erdos_renyi
#: CLRS's sampler of each CLRS-30 graph algorithm, with CLRS's defaults (table in the module doc).
CLRS_SAMPLERS: dict[str, Callable[..., SampledGraph]] = {
    "clrs_dfs": partial(_ER, p=0.5, directed=True),
    "clrs_bfs": partial(_ER, p=0.5, with_source=True),
    "clrs_topological_sort": partial(_ER, p=0.5, directed=True, acyclic=True),
    "clrs_articulation_points": partial(_ER, p=0.2),
    "clrs_bridges": partial(_ER, p=0.2),
    "clrs_mst_kruskal": partial(_ER, p=0.2, weighted=True),
    "clrs_mst_prim": partial(_ER, p=0.5, weighted=True, with_source=True),
    "clrs_bellman_ford": partial(_ER, p=0.5, weighted=True, with_source=True),
    "clrs_dijkstra": partial(_ER, p=0.5, weighted=True, with_source=True),
    "clrs_dag_shortest_paths": partial(_ER, p=0.5, directed=True, acyclic=True, weighted=True, with_source=True),
    "clrs_floyd_warshall": partial(_ER, p=0.5, weighted=True),
    "clrs_strongly_connected_components": partial(clrs_community, k=4, p=0.5, eps=0.01, directed=True),
    "clrs_er": clrs_erdos_renyi,
    "clrs_community": clrs_community,
}


def clrs_sampler(algorithm: str) -> Callable[..., SampledGraph]:
    """CLRS's sampler for ``algorithm`` (a CLRS-30 graph algorithm name), taking ``n`` and ``seed``.

    >>> clrs_sampler("bfs")(n=4, seed=1).source is not None
    True

    :param algorithm: a CLRS-30 graph algorithm name (e.g. ``"bfs"``, ``"dijkstra"``).
    """
    key = f"clrs_{algorithm}"
    if key not in CLRS_SAMPLERS or algorithm in ("er", "community"):
        known = sorted(k.removeprefix("clrs_") for k in CLRS_SAMPLERS if k not in ("clrs_er", "clrs_community"))
        raise KeyError(f"no CLRS sampler for {algorithm!r}; CLRS-30's graph algorithms are {known}")
    return CLRS_SAMPLERS[key]
