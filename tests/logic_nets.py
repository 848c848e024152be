"""Hand-set 2-round reachability networks with OR and AND structure and their known circuits.

Both are a ``HookedGNN("minagg", d_hidden=1)`` with every weight zero except

* node encoder ``h = sign * x + offset`` (one channel), message ``m_uv = relu(h_u)``,
  aggregation ``min``, update ``h'_v = a_v``, decoder ``d = h``.

**OR** (``or_case``): ``h = 1 - x`` (0 = reached; ``min`` is an OR over in-neighbours).
Nodes ``s a b q d e f``; self-loops on every node (edges 0-6), then ``s->a`` (7), ``s->b`` (8),
``a->q`` (9), ``b->q`` (10) and a distractor ``d->e`` (11), ``e->f`` (12). Clean: the source is
``s``; corrupted: the source is ``d``. Metric: ``1 - d_q`` (1 when ``q`` is reached after 2
rounds). The two paths ``s->a->q`` and ``s->b->q`` are redundant: every single message
ablation does nothing when noising.

**AND** (``and_case``): ``h = x`` (1 = reached; ``min`` is an AND). Nodes ``s1 s2 a b q d e``;
no self-loops; edges ``s1->a`` (0), ``s2->b`` (1), ``a->q`` (2), ``b->q`` (3), ``d->e`` (4).
Clean: sources ``s1, s2``; corrupted: source ``d``. Metric: ``d_q``. When denoising every
single message patch does nothing (one branch alone is not enough).

Known circuits (message units ``(round, edge)``), derived by hand in the comments below and
checked against :func:`twin` (a float64 plain-Python re-implementation). A minimal faithful
circuit is not always unique; ``known[direction]`` lists every one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from hookgnn import Graph, HookedGNN
from hookgnn.patching.components import MessageEdge, message_edges
from hookgnn.spec import FeatureSpec


@dataclass
class LogicCase:
    name: str
    model: HookedGNN
    clean: Graph
    corrupted: Graph
    query: int
    sign: float
    offset: float
    known: dict[str, list[set[tuple[int, int]]]]

    def metric(self, out, graph: Graph) -> torch.Tensor:  # noqa: ANN001
        d = out.outputs["d"][graph.ptr[:-1] + self.query]
        return 1.0 - d if self.sign < 0 else d

    def universe(self) -> list[MessageEdge]:
        return message_edges(self.clean.edge_index, range(2), self.model)


def _model(sign: float, offset: float) -> HookedGNN:
    model = HookedGNN("minagg", d_hidden=1, node_in=1, max_steps=2, spec={"d": FeatureSpec("output", "node", "scalar")})
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.node_encoder.lin.weight.fill_(sign)
        model.node_encoder.lin.bias.fill_(offset)
        model.layers[0].agg.weight[0, 0] = 1.0  # tied over rounds
        model.layers[0].up.weight[0, 0] = 1.0
        model.decoders["d"].out.weight[0, 0] = 1.0
    return model.eval()


def _flags(n: int, on: list[int]) -> torch.Tensor:
    x = torch.zeros(n, 1)
    x[on, 0] = 1.0
    return x


def or_case() -> LogicCase:
    edges = [(v, v) for v in range(7)] + [(0, 1), (0, 2), (1, 3), (2, 3), (4, 5), (5, 6)]
    ei = torch.tensor(edges).T
    clean, corrupted = Graph(x=_flags(7, [0]), edge_index=ei), Graph(x=_flags(7, [4]), edge_index=ei)
    path_a, path_b = {(0, 7), (1, 9)}, {(0, 8), (1, 10)}
    # noising: either path alone keeps q reached; denoising: any one message of a path reaches q
    known = {"noising": [path_a, path_b], "denoising": [{m} for m in sorted(path_a | path_b)]}
    return LogicCase("or", _model(-1.0, 1.0), clean, corrupted, 3, -1.0, 1.0, known)


def and_case() -> LogicCase:
    ei = torch.tensor([(0, 2), (1, 3), (2, 4), (3, 4), (5, 6)]).T
    clean, corrupted = Graph(x=_flags(7, [0, 1]), edge_index=ei), Graph(x=_flags(7, [5]), edge_index=ei)
    # noising: all four messages of both branches; denoising: one message of each branch
    known = {"noising": [{(0, 0), (0, 1), (1, 2), (1, 3)}],
             "denoising": [{a, b} for a in ((0, 0), (1, 2)) for b in ((0, 1), (1, 3))]}
    return LogicCase("and", _model(1.0, 0.0), clean, corrupted, 4, 1.0, 0.0, known)


CASES = {"or": or_case, "and": and_case}


def twin(case: LogicCase, graph: Graph, senders: dict[tuple[int, int], float] | None = None) -> list[list[float]]:
    """Node states (float64, plain Python) entering each round and after the last; ``senders[(t, e)]``
    replaces the sender state message ``e`` of round ``t`` reads."""
    senders = senders or {}
    src, dst = graph.edge_index.tolist()
    n = graph.num_nodes
    h = [case.sign * float(v) + case.offset for v in graph.x[:, 0].tolist()]
    states = [h]
    for t in range(2):
        msgs = [max(senders.get((t, e), h[u]), 0.0) for e, u in enumerate(src)]
        agg = [min((m for m, v in zip(msgs, dst) if v == node), default=0.0) for node in range(n)]
        h = agg
        states.append(h)
    return states


def twin_metric(case: LogicCase, circuit: set[tuple[int, int]], direction: str) -> float:
    """The metric with the messages outside ``circuit`` (noising) or inside it (denoising) reading the
    other run's sender states (resample ablation), by :func:`twin`."""
    base, source = (case.clean, case.corrupted) if direction == "noising" else (case.corrupted, case.clean)
    src_states = twin(case, source)
    src = case.clean.edge_index[0].tolist()
    units = {(t, e) for t in range(2) for e in range(len(src))}
    swapped = units - circuit if direction == "noising" else circuit
    final = twin(case, base, {(t, e): src_states[t][src[e]] for t, e in swapped})[-1][case.query]
    return 1.0 - final if case.sign < 0 else final


def twin_faithfulness(case: LogicCase, circuit: set[tuple[int, int]], direction: str) -> float:
    units = {(t, e) for t in range(2) for e in range(case.clean.num_edges)}
    full, empty = twin_metric(case, units, direction), twin_metric(case, set(), direction)
    return (twin_metric(case, circuit, direction) - empty) / (full - empty)


def as_pairs(units) -> set[tuple[int, int]]:  # noqa: ANN001
    return {(u.round, u.edge) for u in units}
