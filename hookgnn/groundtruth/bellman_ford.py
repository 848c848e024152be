"""Bellman-Ford as a min-plus network (Nerem et al., arXiv 2503.19173), with a redundant copy and a decoy.

Node inputs ``x = (s, f)`` (source flag, decoy feature), edge input ``w > 0``. ``T = 3``
rounds of :class:`~hookgnn.nn.MinAgg` (``d_hidden = 3``, min aggregation) with hand-set
weights keep the distance shifted by a constant :math:`\\beta` (``BIG``),
:math:`h_v = d_v - \\beta`, on *two* channels (0 and 1, identical copies):

.. math::

    h^{(0)}_v = -\\beta s_v, \\qquad
    m_{uv} = \\mathrm{relu}(h_u + w_{uv} + \\beta) = d_u + w_{uv}, \\qquad
    h'_v = \\min_{u \\to v} m_{uv} - \\beta

so :math:`d^{(t+1)}_v = \\min_{u \\to v} d^{(t)}_u + w_{uv}` (self-loops of weight 0 keep
:math:`d_v`), the min-plus Bellman-Ford step. A state of 0 means :math:`d = \\beta`, "not
reached": a zero-ablated sender sends :math:`\\beta + w`, which never wins the min. The
decoder reads :math:`\\hat d_v = \\tfrac12 h_{v,0} + \\tfrac12 h_{v,1} + \\beta` (each copy carries
half of the read-out). Channel 2 is a decoy,
:math:`c' = \\tfrac12 \\min_u \\mathrm{relu}(c_u + w_{uv}) + \\tfrac12 c_v`, that varies with ``f``
and ``w`` and that nothing reads.

Each graph is a random directed graph on ``n`` nodes with a self-loop (weight 0) at every
node, source 0, and the query ``v``: a node whose ``T``-round distance is reached by a
unique walk, with a margin of at least ``MARGIN`` at every min along it. Corrupted: the source
flag halved (its distance becomes :math:`\\beta / 2`), every weight doubled and ``f`` redrawn,
so every corrupted message exceeds every clean distance that matters.

Known circuit (resample or zero ablation): the messages of that walk, one per round (a
self-loop where the walk waits), every one necessary (a chain). Denoising (corrupted run, a set's
messages patched from the clean run) single messages suffice: the last message of the walk that is
shortest under the corrupted (doubled) weights, and earlier ones that reach the query through
weight-0 self-loops (``pair.sufficient_for("denoising")``). Neuron level: channels
0 and 1 everywhere and the weight edges between them; nothing that touches channel 2.
"""

from __future__ import annotations

import numpy as np
import torch

from hookgnn.graph import Graph
from hookgnn.groundtruth.base import GroundTruth, Pair, QueryValue, circuit_weights, with_query
from hookgnn.models import HookedGNN
from hookgnn.patching.components import MessageEdge
from hookgnn.spec import FeatureSpec

BIG = 100.0
MARGIN = 0.05
ROUNDS = 3


def build_bellman_ford(rounds: int = ROUNDS) -> HookedGNN:
    """The hand-set min-plus :class:`~hookgnn.nn.MinAgg` network of the module docstring.

    >>> model = build_bellman_ford()
    >>> g = Graph(x=torch.tensor([[1., 0.], [0., 0.], [0., 0.]]), edge_index=torch.tensor([[0, 1, 0, 1, 2], [0, 1, 1, 2, 2]]),
    ...           edge_attr=torch.tensor([[0.], [0.], [0.5], [0.25], [0.]]))
    >>> model(g)["d"].tolist()
    [0.0, 0.5, 0.75]
    """
    model = HookedGNN("minagg", d_hidden=3, node_in=2, edge_in=1, max_steps=rounds,
                      spec={"d": FeatureSpec("output", "node", "scalar")})
    layer = model.layers[0]
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.node_encoder.lin.weight.copy_(torch.tensor([[-BIG, 0.0], [-BIG, 0.0], [0.0, 1.0]]))
        model.edge_encoder.lin.weight.copy_(torch.ones(3, 1))
        # message pre-activation from [h_u, e_uv]: channel c reads h_u[c] + e_uv[c] (+ BIG on the copies)
        layer.agg.weight.copy_(torch.cat([torch.eye(3), torch.eye(3)], dim=1))
        layer.agg.bias.copy_(torch.tensor([BIG, BIG, 0.0]))
        # update from [a_v, h_v]: copies a - BIG; decoy (a + c) / 2
        up = torch.zeros(3, 6)
        up[0, 0], up[1, 1], up[2, 2], up[2, 5] = 1.0, 1.0, 0.5, 0.5
        layer.up.weight.copy_(up)
        layer.up.bias.copy_(torch.tensor([-BIG, -BIG, 0.0]))
        model.decoders["d"].out.weight[0, :2] = 0.5
        model.decoders["d"].out.bias.fill_(BIG)
    return model.eval()


def _walk(n: int, src: np.ndarray, dst: np.ndarray, w: np.ndarray, rounds: int, v: int) -> list[int] | None:
    """The edges (one per round) of the unique walk that gives ``v`` its ``rounds``-round distance,
    or ``None`` if ``v`` is not reached or some min along the walk is won by less than ``MARGIN``."""
    d = [np.where(np.arange(n) == 0, 0.0, BIG)]
    for _ in range(rounds):
        new = np.full(n, np.inf)
        np.minimum.at(new, dst, d[-1][src] + w)
        d.append(new)
    if d[-1][v] > BIG / 4:
        return None
    edges: list[int] = []
    for t in range(rounds, 0, -1):
        into = np.nonzero(dst == v)[0]
        vals = d[t - 1][src[into]] + w[into]
        order = np.argsort(vals)
        if len(order) > 1 and vals[order[1]] - vals[order[0]] < MARGIN:
            return None
        e = int(into[order[0]])
        edges.append(e)
        v = int(src[e])
    return edges[::-1] if v == 0 else None


def _denoising_sets(n: int, src: np.ndarray, dst: np.ndarray, w: np.ndarray, rounds: int,
                    q: int) -> tuple[frozenset[MessageEdge], ...]:
    """The minimal sufficient message sets when denoising: single messages.

    Denoising runs the corrupted graph (weights :math:`2w`, every corrupted distance at least
    :math:`\\beta / 2`) with a set's messages reading the clean sender state. With every message
    patched the query gets :math:`V = \\min_{u \\to q} D^{(T-1)}_u + 2 w_{uq}` (:math:`D^{(t)}` the clean
    :math:`t`-round distances). Every value a partly patched run carries is a clean distance plus
    doubled weights along a walk, so at least :math:`V`; the query reaches :math:`V` exactly when
    one patched message :math:`(t, u \\to v)` does, its value :math:`D^{(t)}_u + 2 w_{uv}` carried on
    over the remaining rounds along doubled weights. So the minimal sufficient sets are the single
    messages whose carried value equals :math:`V` (the last message of the doubled-weight optimum,
    and the earlier ones that reach the query through weight-0 self-loops).
    """
    d = [np.where(np.arange(n) == 0, 0.0, BIG)]
    for _ in range(rounds - 1):
        new = np.full(n, np.inf)
        np.minimum.at(new, dst, d[-1][src] + w)
        d.append(new)
    into = dst == q
    best = float(np.min(d[rounds - 1][src[into]] + 2 * w[into]))
    assert best < BIG / 4, "the query is reached in the clean run"
    out = []
    for t in range(rounds):
        for e in range(len(src)):
            carried = np.full(n, np.inf)
            carried[dst[e]] = d[t][src[e]] + 2 * w[e]
            for _ in range(t + 1, rounds):
                nxt = np.full(n, np.inf)
                np.minimum.at(nxt, dst, carried[src] + 2 * w)
                carried = nxt
            if abs(carried[q] - best) <= 1e-9 * max(1.0, best):
                out.append(frozenset({MessageEdge(t, e, int(src[e]), int(dst[e]))}))
    return tuple(out)


def sample_bellman_ford(rng: np.random.Generator, n: int = 8, p: float = 0.3, rounds: int = ROUNDS) -> Pair:
    """One pair of the module docstring: the query is the node with the most real hops on its walk.

    >>> p = sample_bellman_ford(np.random.default_rng(0))
    >>> [m.round for m in sorted(p.circuit)], float(p.clean["query"].sum())
    ([0, 1, 2], 1.0)
    """
    for _ in range(1000):
        adj = (rng.random((n, n)) < p) & ~np.eye(n, dtype=bool)
        u, v = np.nonzero(adj)
        src = np.concatenate([np.arange(n), u])
        dst = np.concatenate([np.arange(n), v])
        w = np.concatenate([np.zeros(n), rng.uniform(0.2, 1.0, len(u))])
        walks = {q: _walk(n, src, dst, w, rounds, q) for q in range(1, n)}
        hops = {q: sum(src[e] != dst[e] for e in es) for q, es in walks.items() if es is not None}
        if not hops or max(hops.values()) < 2:
            continue
        q = max(hops, key=lambda k: (hops[k], -k))
        ei = torch.tensor(np.stack([src, dst]), dtype=torch.long)
        x = torch.zeros(n, 2)
        x[0, 0] = 1.0
        x[:, 1] = torch.from_numpy(rng.uniform(0, 1, n)).float()
        bad = torch.stack([0.5 * x[:, 0], torch.from_numpy(rng.uniform(0, 1, n)).float()], dim=1)
        wt = torch.from_numpy(w).float().unsqueeze(1)
        clean = with_query(Graph(x=x, edge_index=ei, edge_attr=wt), q)
        corrupted = with_query(Graph(x=bad, edge_index=ei, edge_attr=2.0 * wt), q)
        walk = walks[q]
        assert walk is not None
        circuit = frozenset(MessageEdge(t, e, int(src[e]), int(dst[e])) for t, e in enumerate(walk))
        denoising = _denoising_sets(n, src, dst, wt[:, 0].double().numpy(), rounds, q)
        return Pair(clean, corrupted, circuit, (), denoising)
    raise RuntimeError(f"no graph with a unique {rounds}-round shortest walk of >= 2 hops in 1000 draws (n={n}, p={p})")


def minplus_bellman_ford() -> GroundTruth:
    """Bellman-Ford as a min-plus MinAgg network with a redundant distance copy and a decoy channel.

    >>> gt = minplus_bellman_ford()
    >>> p = gt.sample_pairs(1, seed=0)[0]
    >>> len(p.circuit) == gt.rounds, gt.structure
    (True, 'chain')
    """
    model = build_bellman_ford()
    copies = {0, 1}
    weights = circuit_weights(model, ROUNDS, {"hook_node_embed": copies, "hook_edge_embed": copies},
                              {s: copies for s in ("hook_src", "hook_message_pre", "hook_message", "hook_aggregation",
                                                   "hook_update")})
    return GroundTruth(
        "minplus_bellman_ford",
        "Bellman-Ford, 3 rounds, min aggregation (MinAgg, Nerem et al.): the shortest walk to the query is a chain "
        "of necessary messages; two copies of the distance channel and a decoy channel nothing reads",
        model, QueryValue("d"), sample_bellman_ford, weights, "chain")
