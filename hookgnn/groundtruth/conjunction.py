"""An AND gate over two paths: an MPNN with sum aggregation whose query needs two messages together.

Node inputs ``x = (s, g, f)``: an activity flag, a gate flag and a decoy feature. ``T = 2``
rounds of a :class:`~hookgnn.nn.MPNN` (``d_hidden = 3``, ``d_mlp = 3``, sum aggregation) with
hand-set weights compute, on state channel 0,

.. math::

    z^{(0)}_v = s_v, \\qquad
    z^{(t+1)}_v = \\mathrm{clip}_{[0, 1]}\\Big(\\sum_{u \\to v} z^{(t)}_u - g_v\\Big)
                = \\mathrm{relu}(A_v - g_v) - \\mathrm{relu}(A_v - g_v - 1)

so a node fires when at least one in-neighbour fired, a gate node (``g = 1``) when at least
two did. Channel 1 stays 0 after the embedding (the gate is read from the inputs ``x``);
channel 2 is a decoy, :math:`c' = \\mathrm{relu}(\\tfrac12 c + \\tfrac12 \\sum_u \\mathrm{relu}(c_u))`,
that nothing reads. The decoder reads :math:`\\hat z_v = z^{(T)}_v`.

Each graph holds ``u1 -> a -> q`` and ``u2 -> b -> q`` with the gate ``q`` (the query) and a
distractor path ``c1 -> c -> q``, plus ``k`` extra nodes with random activity and random
edges among them, from ``u1`` / ``u2`` to them and from them to ``c1`` (so the distractor
fires, but reaches ``q`` only after round 2). Clean: ``u1`` and ``u2`` fire; corrupted: neither
does, extra activities and ``f`` are redrawn.

Known circuit (resample or zero ablation): the four messages ``u1 -> a``, ``u2 -> b`` (round 0)
and ``a -> q``, ``b -> q`` (round 1), all needed together: ablating any one of them sets the
query to its corrupted value, and every single-message *denoising* patch has effect 0. Denoising,
one message of each branch suffices (four minimal pairs: the recomputed rest of a branch carries it).
Neuron level: channel 0, the message MLP's hidden neuron 0 and the update MLP's hidden
neurons 0 and 1, the gate column of the inputs, and the weight edges between them.
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

U1, U2, A, B, Q, C1, C = range(7)
MOTIF = [(U1, A), (U2, B), (A, Q), (B, Q), (C1, C), (C, Q)]


def build_conjunction() -> HookedGNN:
    """The hand-set 2-round MPNN (sum aggregation) of the module docstring.

    >>> model = build_conjunction()
    >>> x = torch.tensor([[1., 0., 0.], [1., 0., 0.], [0., 1., 0.]])  # two active nodes into a gate
    >>> model(Graph(x=x, edge_index=torch.tensor([[0, 1], [2, 2]])), steps=1)["z"].tolist()
    [0.0, 0.0, 1.0]
    """
    model = HookedGNN(lambda d: MPNN(d, d_mlp=3, aggr="sum"), d_hidden=3, node_in=3, max_steps=2,
                      spec={"z": FeatureSpec("output", "node", "scalar")})
    layer = model.layers[0]
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.node_encoder.lin.weight.copy_(torch.eye(3))  # (s, g, f) -> state (z, g, c) and inputs x = (s, g, f)
        # message MLP input [x_u, h_u, x_v, h_v, e] (3 columns each): n0 = relu(z_u), n2 = relu(c_u)
        w_in = layer.message_mlp.lin_in.weight
        w_in[0, 3], w_in[2, 5] = 1.0, 1.0
        layer.message_mlp.lin_out.weight[0, 0] = 1.0
        layer.message_mlp.lin_out.weight[2, 2] = 1.0
        # update MLP input [x_v, h_v, a_v]: k0 = relu(A - g), k1 = relu(A - g - 1), k2 = relu(c/2 + A_c/2)
        u_in = layer.update_mlp.lin_in.weight
        u_in[0, 6], u_in[0, 1] = 1.0, -1.0
        u_in[1, 6], u_in[1, 1] = 1.0, -1.0
        layer.update_mlp.lin_in.bias[1] = -1.0
        u_in[2, 5], u_in[2, 8] = 0.5, 0.5
        u_out = layer.update_mlp.lin_out.weight
        u_out[0, 0], u_out[0, 1], u_out[2, 2] = 1.0, -1.0, 1.0
        model.decoders["z"].out.weight[0, 0] = 1.0
    return model.eval()


def sample_conjunction(rng: np.random.Generator, max_extra: int = 4) -> Pair:
    """One pair of the module docstring with ``k ~ U{0..max_extra}`` extra nodes.

    >>> p = sample_conjunction(np.random.default_rng(0))
    >>> sorted((m.round, m.u, m.v) for m in p.circuit)
    [(0, 0, 2), (0, 1, 3), (1, 2, 4), (1, 3, 4)]
    """
    k = int(rng.integers(0, max_extra + 1))
    extra = list(range(7, 7 + k))
    edges = list(MOTIF)
    edges += [(u, v) for u in extra for v in extra if u != v and rng.random() < 0.3]
    edges += [(u, v) for u in (U1, U2) for v in extra if rng.random() < 0.4]
    edges += [(u, C1) for u in extra if rng.random() < 0.5]
    order = rng.permutation(len(edges))
    edges = [edges[i] for i in order]
    n = 7 + k
    ei = torch.tensor(edges, dtype=torch.long).T.reshape(2, -1)

    def inputs(active: list[int]) -> torch.Tensor:
        x = torch.zeros(n, 3)
        x[active, 0] = 1.0
        x[[e for e in extra if rng.random() < 0.5], 0] = 1.0
        x[Q, 1] = 1.0
        x[:, 2] = torch.from_numpy(rng.uniform(0, 1, n)).float()
        return x

    clean = with_query(Graph(x=inputs([U1, U2]), edge_index=ei), Q)
    corrupted = with_query(Graph(x=inputs([]), edge_index=ei), Q)
    at = {e: i for i, e in enumerate(edges)}
    circuit = frozenset({MessageEdge(0, at[(U1, A)], U1, A), MessageEdge(0, at[(U2, B)], U2, B),
                         MessageEdge(1, at[(A, Q)], A, Q), MessageEdge(1, at[(B, Q)], B, Q)})
    ua, uq = MessageEdge(0, at[(U1, A)], U1, A), MessageEdge(1, at[(A, Q)], A, Q)
    vb, vq = MessageEdge(0, at[(U2, B)], U2, B), MessageEdge(1, at[(B, Q)], B, Q)
    return Pair(clean, corrupted, circuit, (), tuple(frozenset(s) for s in ((ua, vb), (ua, vq), (uq, vb), (uq, vq))))


def and_conjunction() -> GroundTruth:
    """An AND over two paths (both needed), sum aggregation, with a distractor path and a decoy channel.

    >>> gt = and_conjunction()
    >>> p = gt.sample_pairs(1, seed=1)[0]
    >>> with torch.no_grad():
    ...     float(gt.metric(gt.model(p.clean), p.clean)), float(gt.metric(gt.model(p.corrupted), p.clean))
    (1.0, 0.0)
    """
    model = build_conjunction()
    weights = circuit_weights(model, 2, {"hook_node_embed": {0, 1}},
                              {"hook_src": {0}, "message_mlp.hook_pre": {0}, "message_mlp.hook_post": {0},
                               "hook_message": {0}, "hook_aggregation": {0}, "update_mlp.hook_pre": {0, 1},
                               "update_mlp.hook_post": {0, 1}, "hook_update_pre": {0}, "hook_update": {0}})
    return GroundTruth(
        "and_conjunction",
        "an AND gate, 2 rounds, sum aggregation (MPNN): the query fires only when both paths deliver; a "
        "distractor path that fires too late and a decoy channel nothing reads",
        model, QueryValue("z"), sample_conjunction, weights, "and")
