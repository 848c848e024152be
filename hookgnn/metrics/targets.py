"""The one rule for metric targets: a metric reads its targets from the clean graph.

A metric is called as ``metric(output, graph)`` and may read field-name targets
(``"pi"``, ``"d"``) from ``graph``. A patched, corrupted, interpolated or batched run
is a different graph from the clean one, so every function of
:mod:`hookgnn.patching` (sweeps, path patching, estimators, circuit evaluation,
verification, and through them :mod:`hookgnn.parallel`) calls its metric through
:func:`clean_targets`: the metric receives the run's graph (its structure and
features) carrying the *clean* graph's fields, tiled over the copies of a batch.
Denoising and noising therefore score against the same targets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
from jaxtyping import Float
from torch import Tensor

from hookgnn.graph import Field, Graph
from hookgnn.metrics.per_graph import Metric


@dataclass(frozen=True, eq=False)
class CleanTargets:
    """A metric that reads every field (its targets) from the clean graph: see :func:`clean_targets`."""

    metric: Metric
    clean: Graph

    def __call__(self, out: object, graph: Graph) -> Float[Tensor, " graph"]:
        return self.metric(out, with_clean_fields(graph, self.clean))


def clean_targets(metric: Metric, clean: Graph) -> CleanTargets:
    r"""``metric`` with its field-name targets read from ``clean``, whichever graph is run.

    The one rule of hookgnn's patching: denoising and noising, exact sweeps and estimators
    all score a run against the clean graph's targets, so the corrupted baseline is
    :math:`m(\text{corrupted run};\ \text{clean targets})`. The metric is called with
    :func:`with_clean_fields` of the run's graph. Wrapping twice keeps one wrapper.

    >>> from hookgnn.graph import Field
    >>> e = torch.zeros(2, 0, dtype=torch.long)
    >>> clean = Graph(x=torch.zeros(2, 1), edge_index=e, fields={"d": Field(torch.tensor([1., 2.]), "node")})
    >>> corrupted = clean.with_fields(d=Field(torch.tensor([5., 5.]), "node"))
    >>> from hookgnn.metrics.per_graph import DistanceMSE
    >>> metric = DistanceMSE("d", target="d")
    >>> float(clean_targets(metric, clean)({"d": torch.tensor([1., 2.])}, corrupted).squeeze())
    0.0
    """
    inner = metric.metric if isinstance(metric, CleanTargets) else metric
    return CleanTargets(inner, clean)


def with_clean_fields(run: Graph, clean: Graph) -> Graph:
    """``run`` (``k >= 1`` copies of ``clean``'s structure) with the fields of ``clean`` tiled ``k`` times.

    Raises ``ValueError`` naming the field and the shapes when ``run`` does not have the
    clean graph's structure row for row (copy by copy).

    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0], [1]]))
    >>> with_clean_fields(Graph.collate([g, g]), g).num_nodes
    4
    """
    if run is clean:
        return run
    per = {loc: clean.count(loc) for loc in ("node", "edge", "graph")}
    k = run.num_graphs // per["graph"] if per["graph"] else 1
    for name, f in clean.fields.items():
        if run.count(f.location) != k * per[f.location]:
            raise ValueError(f"metric target field {name!r} of the clean graph has shape {tuple(f.value.shape)} "
                             f"({per[f.location]} {f.location}s), but the run has {run.count(f.location)} "
                             f"{f.location}s, not {k} copies of the clean graph: the clean graph must have the "
                             "structure of the graph being run")
    same = all(run.count(loc) == k * n for loc, n in per.items())  # type: ignore[arg-type]
    if same and k > 0 and clean.num_nodes:
        offsets = torch.arange(k, device=run.device).repeat_interleave(per["edge"]) * per["node"]
        same = torch.equal(run.edge_index, clean.edge_index.to(run.device).repeat(1, k) + offsets) \
            and torch.equal(run.ptr.diff(), clean.ptr.diff().to(run.device).repeat(k))
    if not same:
        raise ValueError(f"the metric reads its targets from the clean graph ({per['node']} nodes, {per['edge']} "
                         f"edges, {per['graph']} graphs), but the run's graph ({run.num_nodes} nodes, {run.num_edges} "
                         f"edges, {run.num_graphs} graphs) is not copies of its structure row for row")
    fields = tiled_fields(clean, k, run.device)
    # The clean graph's fields were checked when it was built and ``run`` has its structure copy for
    # copy (checked above), so the result is valid: no second check of every tiled field (the time
    # of a small batched run went there).
    out = object.__new__(Graph)
    out.__dict__.update(run.__dict__)
    out.fields = fields
    return out


class LazyFields(Mapping[str, Field]):
    """Fields made on first read: ``make[name]()`` runs once, when ``name`` is first looked up
    (a batch of copies tiles only the fields that the model and metric read, not every hint).

    >>> f = LazyFields({"d": lambda: Field(torch.ones(2), "node")})
    >>> sorted(f), f["d"].value.tolist()
    (['d'], [1.0, 1.0])

    :param make: per field name, the function that makes it.
    """

    def __init__(self, make: dict[str, Callable[[], Field]]) -> None:
        self._make, self._made = make, {}

    def __getitem__(self, name: str) -> Field:
        f = self._made.get(name)
        if f is None:
            f = self._made[name] = self._make[name]()
        return f

    def __iter__(self) -> Iterator[str]:
        return iter(self._make)

    def __len__(self) -> int:
        return len(self._make)


def tiled_fields(graph: Graph, k: int, device: torch.device | str | None = None) -> Mapping[str, Field]:
    """The fields of ``graph`` repeated ``k`` times along their item axis: the fields of
    ``Graph.collate([graph] * k)`` (moved to ``device`` if given), one ``repeat`` per field,
    made when first read (:class:`LazyFields`).

    >>> g = Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0], [1]]),
    ...           fields={"d": Field(torch.tensor([1., 2.]), "node")})
    >>> tiled_fields(g, 2)["d"].value.tolist()
    [1.0, 2.0, 1.0, 2.0]

    :param graph: the graph (or batch) whose fields are tiled.
    :param k: how many copies (``>= 0``).
    :param device: where the tiled values go (default: where they are).
    """
    fields = graph.fields

    def tile(name: str) -> Callable[[], Field]:
        def make() -> Field:
            f = fields[name]  # read only now: ``fields`` may be lazy itself
            return Field(f.value.to(device if device is not None else f.value.device).repeat(
                *([1] * f.item_dim), k, *([1] * (f.value.dim() - f.item_dim - 1))), f.location, f.time)
        return make

    return LazyFields({name: tile(name) for name in fields})
