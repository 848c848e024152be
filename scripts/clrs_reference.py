"""Reference fixtures from CLRS-30's own code (dm-clrs), for ``tests/test_tasks_clrs_reference.py``.

Run by hand in an environment with dm-clrs (TensorFlow + JAX, too heavy for CI)::

    python3 -m venv /tmp/clrsvenv && /tmp/clrsvenv/bin/pip install dm-clrs
    /tmp/clrsvenv/bin/python scripts/clrs_reference.py            # writes tests/data/clrs_*.npz

It imports nothing from hookgnn. For each algorithm it draws seeded graphs (``n`` from 1
to 32; CLRS's Erdős–Rényi rule, sparse graphs with several components, tied weights,
directed variants where the algorithm takes them), runs CLRS's reference
implementation (``clrs._src.algorithms.graphs``) and stores its inputs, outputs and
whole hint trajectories, compressed:

* ``n``, ``source``, ``directed`` [G]; ``A`` the dense ``A`` matrices flattened and
  concatenated (float32: every weight is drawn as a float32 value, the precision
  hookgnn stores, so both sides compute on the same numbers);
* ``T`` [G]: trajectory lengths;
* ``output/<name>`` and ``hint/<name>``, graph after graph, step after step: node
  features ``[T, n]`` (pointers as node indices, categoricals as codes), ``mask_one``
  features as the index of the 1 ``[T]``, graph features ``[T]``, edge features at
  the non-zero entries of CLRS's ``adj`` (``A`` plus the diagonal), row-major.

Two choices, documented in ``docs/guide/tasks.md``:

* CLRS reads ``A[u, v] != 0`` as "edge", so weights are drawn non-zero;
* Dijkstra and Prim extract ``np.argsort(key + ...)[0]``, numpy's unstable sort, whose
  choice among tied keys depends on the CPU; the script makes that one sort stable
  (lowest index first, hookgnn's documented rule) so that tied fixtures are
  reproducible. Nothing else in CLRS's code is touched.

Every graph gets CLRS's random self-loops on the diagonal (hookgnn stores a graph's own
self-loop as a second edge ``u -> u``; articulation points and bridges spend a step on it).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

# (CLRS function name, takes a source, weighted, may be directed, may have self-loops, CLRS's ER density)
ALGORITHMS = {
    "bfs": ("bfs", True, False, True, True, 0.5),
    "dfs": ("dfs", False, False, True, True, 0.5),
    "articulation_points": ("articulation_points", False, False, False, True, 0.2),
    "bridges": ("bridges", False, False, False, True, 0.2),
    "mst_prim": ("mst_prim", True, True, False, True, 0.2),
    "bellman_ford": ("bellman_ford", True, True, True, True, 0.5),
    "dijkstra": ("dijkstra", True, True, True, True, 0.5),
    "topological_sort": ("topological_sort", False, False, True, False, 0.5),
    "strongly_connected_components": ("strongly_connected_components", False, False, True, True, 0.5),
    "mst_kruskal": ("mst_kruskal", False, True, False, True, 0.2),
    "dag_shortest_paths": ("dag_shortest_paths", True, True, True, False, 0.5),
    "floyd_warshall": ("floyd_warshall", False, True, True, True, 0.5),
}
#: Algorithms on directed acyclic graphs: arcs point forward in a random order of the nodes (CLRS's DAG rule).
ACYCLIC = {"topological_sort", "dag_shortest_paths"}
TIES = np.array([0.25, 0.5, 0.75, 1.0])


def draw_graph(rng: np.random.Generator, i: int, weighted: bool, may_direct: bool, loops: bool,
               p_clrs: float, acyclic: bool = False) -> tuple[np.ndarray, bool]:
    """The ``i``-th test graph: dense ``A`` (float64 holding float32 values) and whether it is directed."""
    n = int(rng.integers(1, 33)) if i % 3 == 0 else int(rng.integers(1, 13))
    kind = i % 4
    directed = acyclic or (may_direct and kind == 3)
    p = {0: p_clrs, 1: 0.08, 2: 0.5, 3: 0.35}[kind]  # 1: sparse, several components; 2: ties
    mat = rng.random((n, n)) < p
    if acyclic:  # forward arcs in a random node order
        order = rng.permutation(n)
        mat = np.triu(mat, 1)[np.ix_(order, order)]
    elif not directed:
        mat = np.triu(mat, 1)
        mat = mat | mat.T
        if loops:
            mat |= np.diag(rng.random(n) < p)
    elif not loops:
        np.fill_diagonal(mat, False)
    if not weighted:
        return mat.astype(np.float64), directed
    w = rng.choice(TIES, size=(n, n)) if kind == 2 else rng.uniform(0.01, 1.0, size=(n, n)).astype(np.float32)
    if not directed:
        w = np.triu(w) + np.triu(w, 1).T
    return np.where(mat, w, 0.0).astype(np.float32).astype(np.float64), directed


class _StableArgsort:
    """numpy with a stable ``argsort``: CLRS's extract-min then takes the lowest index among ties."""

    def __init__(self, np_module: object) -> None:
        self._np = np_module

    def __getattr__(self, name: str) -> object:
        return getattr(self._np, name)

    def argsort(self, a: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        return self._np.argsort(a, kind="stable")


def record(probes: dict, n: int, adj: np.ndarray, store: dict[str, list[np.ndarray]]) -> int:
    """Append one run's outputs and hints to ``store``; returns its number of steps."""
    from clrs._src import specs  # noqa: PLC0415 - dm-clrs is only in the reference environment

    steps = None
    for stage in ("output", "hint"):
        for loc, feats in probes[stage].items():
            for name, probe in feats.items():
                data, kind = np.asarray(probe["data"]), probe["type_"]
                data = data if stage == "hint" else data[None]  # outputs: one "step"
                data = data.reshape((data.shape[0],) + {"node": (n,), "edge": (n, n), "graph": ()}[loc]
                                    + ((-1,) if kind == specs.Type.CATEGORICAL else ()))
                if stage == "hint":
                    steps = data.shape[0]
                if kind == specs.Type.CATEGORICAL:
                    data = data.argmax(-1).astype(np.int8)
                elif kind == specs.Type.MASK_ONE:
                    data = data.argmax(-1).astype(np.int16)
                elif kind == specs.Type.POINTER:
                    data = data.astype(np.int16)
                else:
                    data = data.astype(np.float32)
                if loc == "edge":
                    data = data[:, adj]
                store.setdefault(f"{stage}/{name}", []).append(data.reshape(-1))
    return int(steps)


def build(name: str, count: int, seed: int) -> dict[str, np.ndarray]:
    from clrs._src.algorithms import graphs  # noqa: PLC0415

    fn_name, has_source, weighted, may_direct, loops, p = ALGORITHMS[name]
    fn = getattr(graphs, fn_name)
    rng = np.random.default_rng([seed, sorted(ALGORITHMS).index(name)])
    store: dict[str, list[np.ndarray]] = {}
    meta: dict[str, list] = {"n": [], "source": [], "directed": [], "T": [], "A": []}
    real_np = graphs.np
    graphs.np = _StableArgsort(real_np)
    try:
        for i in range(count):
            A, directed = draw_graph(rng, i, weighted, may_direct, loops, p, name in ACYCLIC)
            n = A.shape[0]
            source = int(rng.integers(n))
            _, probes = fn(A.copy(), source) if has_source else fn(A.copy())
            adj = (A != 0) | np.eye(n, dtype=bool)
            meta["T"].append(record(probes, n, adj, store))
            meta["n"].append(n)
            meta["source"].append(source)
            meta["directed"].append(directed)
            meta["A"].append(A.astype(np.float32).reshape(-1))
    finally:
        graphs.np = real_np
    out = {k: np.concatenate(v) for k, v in store.items()}
    out.update(n=np.array(meta["n"], np.int16), source=np.array(meta["source"], np.int16),
               directed=np.array(meta["directed"]), T=np.array(meta["T"], np.int32), A=np.concatenate(meta["A"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "tests" / "data"))
    parser.add_argument("--graphs", type=int, default=200, help="graphs per algorithm")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=sorted(ALGORITHMS))
    args = parser.parse_args()
    import clrs  # noqa: PLC0415

    Path(args.out).mkdir(parents=True, exist_ok=True)
    print(f"dm-clrs {getattr(clrs, '__version__', '?')}, {args.graphs} graphs per algorithm, seed {args.seed}")
    print(f"{'algorithm':22s} {'graphs':>6s} {'mean T':>7s} {'max T':>6s} {'KiB':>6s} {'s':>6s}")
    for name in args.only:
        start = time.perf_counter()
        data = build(name, args.graphs, args.seed)
        path = Path(args.out) / f"clrs_{name}.npz"
        np.savez_compressed(path, **data)
        print(f"{name:22s} {args.graphs:6d} {data['T'].mean():7.1f} {data['T'].max():6d} "
              f"{path.stat().st_size / 1024:6.0f} {time.perf_counter() - start:6.1f}")


if __name__ == "__main__":
    main()
