"""Reachability (BFS) with two OR-redundant paths and a distractor path: an MPNN with max aggregation.

Node inputs ``x = (s, f)``: the source flag and a decoy feature. ``T = 2`` rounds of a
:class:`~hookgnn.nn.MPNN` (``d_hidden = 2``, ``d_mlp = 3``, max aggregation) with hand-set
weights compute, on state channel 0,

.. math::

    r^{(0)}_v = s_v, \\qquad
    r^{(t+1)}_v = \\min\\big(1,\\ r^{(t)}_v + \\max_{u \\to v} r^{(t)}_u\\big)
                = \\mathrm{relu}(r_v + a_v) - \\mathrm{relu}(r_v + a_v - 1)

(the update MLP's two hidden neurons make the clip; a node without in-edges gets
:math:`a_v = 0`), and on channel 1 a decoy
:math:`c^{(t+1)}_v = \\mathrm{relu}(\\tfrac12 c_v + \\tfrac12 \\max_u \\mathrm{relu}(c_u))`
that varies with ``f`` and that nothing reads. The decoder reads :math:`\\hat r_v = r^{(T)}_v`.

Each graph holds the motif ``s -> a -> q``, ``s -> b -> q`` (two equal-length paths from the
source to the query ``q``) and a distractor path ``d -> c -> q``, plus ``k`` extra nodes with
random edges among them, from ``s`` to them and from them to ``d``. Clean: the source is ``s``;
corrupted: the source flag moves to an extra node (none if ``k = 0``) and ``f`` is redrawn,
so ``q`` is reachable within 2 rounds only in the clean graph (via ``a`` or ``b``: the
distractor is reached 3 rounds after any extra node).

Known circuit (resample or zero ablation): the four messages ``s -> a``, ``s -> b`` (round 0)
and ``a -> q``, ``b -> q`` (round 1); either path alone suffices (max aggregation), so every
single-message noising patch has effect 0. Denoising, each of the four messages alone suffices
(a clean message on either path is carried on to ``q`` by the recomputed rest of that path). Neuron level: channel 0 and the hidden neurons
0 and 1 of each MLP, and the weight edges between them.
"""

from __future__ import annotations

import numpy as np
import torch

from hookgnn.graph import Graph
from hookgnn.groundtruth.base import GroundTruth, Pair, QueryValue, circuit_weights, with_query
from hookgnn.models import HookedGNN
from hookgnn.nn import MPNN
from hookgnn.patching.components import MessageEdge
from hookgnn.spec import FeatureSpec

S, A, B, Q, D, C = range(6)
MOTIF = [(S, A), (S, B), (A, Q), (B, Q), (D, C), (C, Q)]


def build_reachability() -> HookedGNN:
    """The hand-set 2-round MPNN (max aggregation) of the module docstring.

    >>> model = build_reachability()
    >>> g = Graph(x=torch.tensor([[1., 0.], [0., 0.], [0., 0.]]), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> model(g)["r"].tolist()
    [1.0, 1.0, 1.0]
    """
    model = HookedGNN(lambda d: MPNN(d, d_mlp=3, aggr="max"), d_hidden=2, node_in=2, max_steps=2,
                      spec={"r": FeatureSpec("output", "node", "scalar")})
    layer = model.layers[0]
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.node_encoder.lin.weight.copy_(torch.eye(2))  # (s, f) -> state (r, c)
        # message MLP input [x_u, h_u, x_v, h_v, e] (2 columns each); hidden n0 = relu(r_u), n1 = relu(c_u)
        w_in = layer.message_mlp.lin_in.weight
        w_in[0, 2], w_in[1, 3] = 1.0, 1.0
        layer.message_mlp.lin_out.weight[0, 0] = 1.0
        layer.message_mlp.lin_out.weight[1, 1] = 1.0
        # update MLP input [x_v, h_v, a_v]: k0 = relu(r + a), k1 = relu(r + a - 1), k2 = relu(c/2 + a_c/2)
        u_in = layer.update_mlp.lin_in.weight
        u_in[0, 2], u_in[0, 4] = 1.0, 1.0
        u_in[1, 2], u_in[1, 4] = 1.0, 1.0
        layer.update_mlp.lin_in.bias[1] = -1.0
        u_in[2, 3], u_in[2, 5] = 0.5, 0.5
        u_out = layer.update_mlp.lin_out.weight
        u_out[0, 0], u_out[0, 1], u_out[1, 2] = 1.0, -1.0, 1.0
        model.decoders["r"].out.weight[0, 0] = 1.0
    return model.eval()


def sample_reachability(rng: np.random.Generator, max_extra: int = 4) -> Pair:
    """One pair of the module docstring with ``k ~ U{0..max_extra}`` extra nodes.

    >>> p = sample_reachability(np.random.default_rng(0))
    >>> sorted((m.round, m.u, m.v) for m in p.circuit)
    [(0, 0, 1), (0, 0, 2), (1, 1, 3), (1, 2, 3)]
    """
    k = int(rng.integers(0, max_extra + 1))
    extra = list(range(6, 6 + k))
    edges = list(MOTIF)
    edges += [(u, v) for u in extra for v in extra if u != v and rng.random() < 0.3]
    edges += [(S, v) for v in extra if rng.random() < 0.5]
    edges += [(u, D) for u in extra if rng.random() < 0.5]
    order = rng.permutation(len(edges))
    edges = [edges[i] for i in order]
    n = 6 + k
    ei = torch.tensor(edges, dtype=torch.long).T.reshape(2, -1)
    x = torch.zeros(n, 2)
    x[S, 0] = 1.0
    x[:, 1] = torch.from_numpy(rng.uniform(0, 1, n)).float()
    bad = torch.zeros(n, 2)
    if extra:
        bad[int(rng.choice(extra)), 0] = 1.0
    bad[:, 1] = torch.from_numpy(rng.uniform(0, 1, n)).float()
    clean = with_query(Graph(x=x, edge_index=ei), Q)
    corrupted = with_query(Graph(x=bad, edge_index=ei), Q)
    at = {e: i for i, e in enumerate(edges)}
    path_a = frozenset({MessageEdge(0, at[(S, A)], S, A), MessageEdge(1, at[(A, Q)], A, Q)})
    path_b = frozenset({MessageEdge(0, at[(S, B)], S, B), MessageEdge(1, at[(B, Q)], B, Q)})
    singles = tuple(frozenset({m}) for m in sorted(path_a | path_b))  # denoising: any one message suffices
    return Pair(clean, corrupted, path_a | path_b, (path_a, path_b), singles)


def or_reachability() -> GroundTruth:
    """Reachability with two OR-redundant paths (either suffices) and a distractor path and channel.

    >>> gt = or_reachability()
    >>> p = gt.sample_pairs(1, seed=1)[0]
    >>> with torch.no_grad():
    ...     float(gt.metric(gt.model(p.clean), p.clean)), float(gt.metric(gt.model(p.corrupted), p.clean))
    (1.0, 0.0)
    """
    model = build_reachability()
    weights = circuit_weights(model, 2, {"hook_node_embed": {0}},
                              {"hook_src": {0}, "message_mlp.hook_pre": {0}, "message_mlp.hook_post": {0},
                               "hook_message": {0}, "hook_aggregation": {0}, "update_mlp.hook_pre": {0, 1},
                               "update_mlp.hook_post": {0, 1}, "hook_update_pre": {0}, "hook_update": {0}})
    return GroundTruth(
        "or_reachability",
        "BFS reachability, 2 rounds, max aggregation (MPNN): two equal-length paths source -> query, either "
        "suffices; a distractor path that is reached too late and a decoy channel nothing reads",
        model, QueryValue("r"), sample_reachability, weights, "or")
