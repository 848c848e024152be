"""Probe tables: every (hint, step) probed, with control task, selectivity and an untrained baseline.

:func:`probe_hints` fits the probes of :mod:`hookgnn.causal.probes` for each hint and step
on the graphs of a held-in split and scores them on the others (split by graph, so no graph
is seen in both); :class:`ProbeResult` holds the rows and turns them into a table or a
``hint x step`` matrix (:func:`hookgnn.viz.plot_probes` draws it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.spec import Spec
from hookgnn.store import ActivationStore
from hookgnn.tasks.samplers import as_generator
from hookgnn.causal.probes import Probe, StepStates, check_store, collect_states, fit_probe, probe_score, store_states

COLUMNS = ("hint", "step", "metric", "score", "control", "selectivity", "baseline", "n_train", "n_test")


@dataclass
class ProbeResult:
    """One row per (hint, step): ``metric`` (``"r2"`` or ``"accuracy"``), held-out ``score``,
    ``control`` (shuffled labels), ``selectivity`` (score - control), ``baseline`` (the same
    probe on the untrained model; NaN without one), ``n_train`` and ``n_test`` (nodes); and
    the fitted probes by (hint, step)."""

    rows: list[dict[str, Any]]
    probes: dict[tuple[str, int], Probe]

    def table(self) -> str:
        """The rows as an aligned text table."""
        cells = [[f"{r[c]:.3f}" if isinstance(r[c], float) else str(r[c]) for c in COLUMNS] for r in self.rows]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(COLUMNS)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths))]
        lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
        return "\n".join(lines)

    def matrix(self, value: str = "score") -> tuple[list[str], list[int], Tensor]:
        """``(hints, steps, values [hints, steps])`` of one column (NaN where absent)."""
        if value not in ("score", "control", "selectivity", "baseline"):
            raise ValueError(f"value must be score, control, selectivity or baseline, got {value!r}")
        hints = list(dict.fromkeys(r["hint"] for r in self.rows))
        steps = sorted({r["step"] for r in self.rows})
        out = torch.full((len(hints), len(steps)), math.nan, dtype=torch.float64)
        for r in self.rows:
            out[hints.index(r["hint"]), steps.index(r["step"])] = r[value]
        return hints, steps, out


def probe_hints(model: HookedRootModule, graphs: Iterable[Graph] | ActivationStore, spec: Spec,
                hints: Sequence[str] | None = None, steps: Sequence[int] | None = None,
                baseline: HookedRootModule | ActivationStore | None = None,
                test_fraction: float = 0.25, ridge: float = 1e-2, seed: int = 0, **forward_kwargs: Any) -> ProbeResult:
    """Probe every node hint of ``spec`` (or ``hints``) at every step ``1 .. rounds`` (or
    ``steps``) of ``model`` on ``graphs`` (a list of graphs or batches with the hint fields), or on the
    states of an :class:`~hookgnn.store.ActivationStore` written from ``model`` (with the hook points
    ``model.state_hook(k)`` and the hints as labels): the same probes, the same numbers, with the states
    read one step at a time from the store's mapped files instead of held in memory.

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.tasks import get_task
    >>> bfs = get_task("bfs")
    >>> _ = torch.manual_seed(0)
    >>> model = HookedGNN("mpnn", 8, node_in=2, edge_in=1, spec=bfs.spec, max_steps=2)  # x: source flag and pos
    >>> graphs = [bfs.sample(4, "erdos_renyi", seed=s, n=6, p=0.4) for s in range(2)]
    >>> r = probe_hints(model, graphs, bfs.spec)
    >>> [(row["hint"], row["step"], row["metric"]) for row in r.rows]
    [('reach_h', 1, 'accuracy'), ('reach_h', 2, 'accuracy'), ('pi_h', 1, 'accuracy'), ('pi_h', 2, 'accuracy')]

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param graphs: graphs or batches carrying the hint fields, or a store of the model's states on them.
    :param spec: the task's feature specs; every node hint is probed unless ``hints`` says which.
    :param hints: the hints to probe (default: every node hint of ``spec``).
    :param steps: the steps to probe (default: ``1 .. rounds``).
    :param baseline: the same architecture untrained, probed the same way (the ``baseline`` column), or ``None``;
        with a store as ``graphs``, a store written from the untrained model on the same graphs.
    :param test_fraction: the share of graphs held out to score each probe.
    :param ridge: the ridge penalty of the linear probes.
    :param seed: seeds the train/test split and the control task's shuffled labels.
    :param forward_kwargs: keywords for every forward of the model, e.g. ``steps=8`` (not with a store: it
        ran the model already).
    """
    names = list(hints) if hints is not None else [n for n, fs in spec.items() if fs.stage == "hint"]
    for h in names:
        if h not in spec or spec[h].stage != "hint" or spec[h].location != "node":
            raise KeyError(f"{h!r} is not a node hint of the spec; node hints: "
                           f"{[n for n, fs in spec.items() if fs.stage == 'hint' and fs.location == 'node']}")
        if spec[h].any_node:
            raise ValueError(f"probe_hints does not support pointers to any node ({h!r}: stored as node numbers); "
                             "its pointer probes score a node's in-edges")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    if isinstance(graphs, ActivationStore):
        if forward_kwargs:
            raise ValueError(f"forward keywords {sorted(forward_kwargs)} do nothing with an ActivationStore: the store "
                             "holds the states of forwards already run")
        if baseline is not None and not isinstance(baseline, ActivationStore):
            raise TypeError("with an ActivationStore as graphs, baseline must be a store written from the untrained "
                            f"model on the same graphs, not a {type(baseline).__name__}")
        rounds = int(graphs.graphs[0]["rounds"]) if graphs.num_graphs else 0
    else:
        if isinstance(baseline, ActivationStore):
            raise TypeError("baseline is an ActivationStore but graphs are not: pass both as stores or both in memory")
        graphs = list(graphs)
        rounds = int(forward_kwargs.get("steps") or model.num_rounds)
    steps = list(steps) if steps is not None else list(range(1, rounds + 1))
    if isinstance(graphs, ActivationStore):
        states = _stored(model, graphs, names, steps)
        base_states = _stored(model, baseline, names, steps) if isinstance(baseline, ActivationStore) else None
    else:
        states = collect_states(model, graphs, names, steps, **forward_kwargs).__getitem__
        base_states = (collect_states(baseline, graphs, names, steps, **forward_kwargs).__getitem__
                       if baseline is not None else None)
    num_graphs = int(states(steps[0]).graph.max()) + 1
    if num_graphs < 2:
        raise ValueError("probing needs at least two graphs (one to fit on, one held out)")
    rng = as_generator(seed)
    order = torch.from_numpy(rng.permutation(num_graphs))
    held_out = torch.zeros(num_graphs, dtype=torch.bool)
    held_out[order[: max(1, round(test_fraction * num_graphs))]] = True
    rows, probes = [], {}
    for h in names:
        kind = spec[h].type
        ptr = kind == "pointer"
        for k in steps:
            at = states(k)
            train, test = _split(at, h, ~held_out, ptr), _split(at, h, held_out, ptr)
            probe = fit_probe(kind, *train, ridge=ridge)
            score = probe_score(probe, *test)
            control_train, control_test = _control(kind, train, rng), _control(kind, test, rng)
            control = probe_score(fit_probe(kind, *control_train, ridge=ridge), *control_test)
            base = math.nan
            if base_states is not None:
                b_at = base_states(k)
                b_train, b_test = _split(b_at, h, ~held_out, ptr), _split(b_at, h, held_out, ptr)
                base = probe_score(fit_probe(kind, *b_train, ridge=ridge), *b_test)
            probes[(h, k)] = probe
            rows.append({"hint": h, "step": k, "metric": "r2" if kind == "scalar" else "accuracy", "score": score,
                         "control": control, "selectivity": score - control, "baseline": base,
                         "n_train": int(train[0].shape[0]), "n_test": int(test[0].shape[0])})
    return ProbeResult(rows, probes)


def _stored(model: HookedRootModule, store: ActivationStore, hints: list[str],
            steps: list[int]) -> Callable[[int], StepStates]:
    """The states of each step read from ``store`` when asked for (one step in memory at a time),
    after checking that it holds every step's hook point and every hint."""
    for k in steps:
        check_store(model, store, hints, k)
    return lambda k: store_states(model, store, hints, k)


def _split(s: StepStates, hint: str, graphs: Tensor, pointer: bool) -> tuple[Tensor, Tensor, Tensor]:
    """(x, labels, edge_index) of the nodes of the chosen graphs, edges renumbered."""
    keep = graphs[s.graph]
    new = torch.cumsum(keep.long(), 0) - 1
    edges = keep[s.edge_index[1]]
    y = s.labels[hint]
    y = y[edges] if pointer else y[keep]
    return s.x[keep], y, new[s.edge_index[:, edges]]


def _control(kind: str, part: tuple[Tensor, Tensor, Tensor], rng: Any) -> tuple[Tensor, Tensor, Tensor]:
    """The same states with control labels: shuffled among the nodes, or a random in-edge per node."""
    x, y, ei = part
    if kind != "pointer":
        return x, y[torch.from_numpy(rng.permutation(y.shape[0]))], ei
    noise = torch.from_numpy(rng.random(ei.shape[1]))
    best = torch.full((x.shape[0],), -1.0, dtype=noise.dtype).scatter_reduce(0, ei[1], noise, "amax")
    return x, (noise == best[ei[1]]).to(y.dtype), ei
