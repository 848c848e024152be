"""A hand-built MinAgg network that computes Bellman-Ford exactly, with known circuits.

Node state channels (``d_hidden = 4``); ``s`` is the source mask, ``w`` the edge weight:

====  ==========================  ==============================  ==========================
ch    node embedding              message (pre-relu)              update
====  ==========================  ==============================  ==========================
0     ``B (1 - s)``  (distance)   ``h_u0 + w``                    ``a_0``         (relevant)
1     ``2 s + 1``                 ``h_u1 + 0.5 w + 1``            ``0.5 a_1 + 0.5 h_1``
2     ``0.5``                     ``0.1 h_u0 + 1`` (reads ch 0)   ``0.5 a_2``
3     ``s + 0.3``                 ``h_u3 + w``                    ``0.5 h_3 + 0.1 a_3``
====  ==========================  ==============================  ==========================

Edge embedding: ``(w, 0.5 w + 1, 1, -w)``; aggregation: min; decoder ``d = h_0``. Channel 0
is exactly Bellman-Ford (``d'_v = min_{u->v} relu(d_u + w_uv)``, self-loops of weight 0
keep ``d_v``); channels 1-3 have nonzero activations that never reach the output.

True circuits for the queried distance ``d_v`` after ``T = hops(v)`` rounds, where
``s = p_0 -> p_1 -> ... -> p_T = v`` is the (unique) shortest path:

* message level: the messages on ``p_t -> p_{t+1}`` in round ``t`` (the argmin edge of
  every round along the path); every other message has zero effect (min aggregation);
* neuron level: channel 0 of every hook (embeddings, ``hook_src``, ``hook_message_pre``,
  ``hook_message``, ``hook_aggregation``, ``hook_update``) and the weight edges between
  channel-0 neurons; every neuron of channels 1-3 and every edge touching them is not.
"""

from __future__ import annotations

import numpy as np
import torch

from hookgnn import Graph, HookedGNN
from hookgnn.spec import FeatureSpec

B = 100.0


def build(max_steps: int, node_in: int = 1) -> HookedGNN:
    """The hand-set network; it reads column 0 of ``x`` (the source mask) and gives any further
    columns (a task graph's ``pos``) zero weight, so the float64 twin below holds for both."""
    model = HookedGNN("minagg", d_hidden=4, node_in=node_in, edge_in=1, max_steps=max_steps,
                      spec={"d": FeatureSpec("output", "node", "scalar")})
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.node_encoder.lin.weight[:, 0] = torch.tensor([-B, 2.0, 0.0, 1.0])
        model.node_encoder.lin.bias.copy_(torch.tensor([B, 1.0, 0.5, 0.3]))
        model.edge_encoder.lin.weight.copy_(torch.tensor([[1.0], [0.5], [0.0], [-1.0]]))
        model.edge_encoder.lin.bias.copy_(torch.tensor([0.0, 1.0, 1.0, 0.0]))
        agg = torch.zeros(4, 8)
        agg[0, 0], agg[0, 4] = 1, 1
        agg[1, 1], agg[1, 5] = 1, 1
        agg[2, 0], agg[2, 6] = 0.1, 1
        agg[3, 3], agg[3, 7] = 1, -1
        up = torch.zeros(4, 8)
        up[0, 0] = 1
        up[1, 1], up[1, 5] = 0.5, 0.5
        up[2, 2] = 0.5
        up[3, 7], up[3, 3] = 0.5, 0.1
        model.layers[0].agg.weight.copy_(agg)  # tied: every round shares these parameters
        model.layers[0].up.weight.copy_(up)
        model.decoders["d"].out.weight[0, 0] = 1.0
    return model


def random_instance(n: int = 12, p: float = 0.25, seed: int = 0, min_hops: int = 3) -> tuple[Graph, int, list[int], list[int]]:
    """A random directed graph with self-loops (first ``n`` edges), source 0, and the queried
    node ``v`` with the most hops on its shortest path. Returns (graph, v, path, path edge ids)."""
    for attempt in range(1000):
        rng = np.random.default_rng(seed + 1000 * attempt)
        adj = (rng.random((n, n)) < p) & ~np.eye(n, dtype=bool)
        src, dst = np.nonzero(adj)
        w = rng.uniform(0.2, 1.0, size=len(src)).astype(np.float32)
        ei = np.concatenate([np.stack([np.arange(n), np.arange(n)]), np.stack([src, dst])], 1)
        weights = np.concatenate([np.zeros(n, np.float32), w])
        dist, pred, hops = _dijkstra(n, ei, weights, 0)
        reach = [v for v in range(n) if np.isfinite(dist[v])]
        v = max(reach, key=lambda u: hops[u])
        if hops[v] >= min_hops:
            path, edges = [v], []
            while path[-1] != 0:
                e = pred[path[-1]]
                edges.append(e)
                path.append(int(ei[0, e]))
            x = torch.zeros(n, 1)
            x[0, 0] = 1.0
            g = Graph(x=x, edge_index=torch.tensor(ei, dtype=torch.long), edge_attr=torch.tensor(weights).unsqueeze(1))
            return g, v, path[::-1], edges[::-1]
    raise RuntimeError("no instance found")


def _dijkstra(n: int, ei: np.ndarray, w: np.ndarray, s: int) -> tuple[np.ndarray, list[int], list[int]]:
    dist = np.full(n, np.inf)
    dist[s] = 0.0
    pred, hops, done = [-1] * n, [0] * n, np.zeros(n, bool)
    for _ in range(n):
        u = int(np.argmin(np.where(done, np.inf, dist)))
        if not np.isfinite(dist[u]):
            break
        done[u] = True
        for e in np.nonzero(ei[0] == u)[0]:
            v = int(ei[1, e])
            if v != u and dist[u] + w[e] < dist[v]:
                dist[v], pred[v], hops[v] = dist[u] + w[e], int(e), hops[u] + 1
    return dist, pred, hops


def corrupt(g: Graph) -> Graph:
    """Weights doubled and the source mask halved: the shortest-path tree is unchanged along
    the whole straight path between clean and corrupted inputs."""
    return g.replace(x=0.5 * g.x, edge_attr=2.0 * g.edge_attr)


def bellman_ford(g: Graph, steps: int, override=None, message_override=None) -> list[np.ndarray]:
    """Reference distances after each round (float64) of the hand-built channel 0.

    ``override[(t, u)] = value`` sets node u's state after round t; ``message_override[(t, e)]
    = state`` makes edge e of round t read that sender state instead of the live one.
    """
    override = override or {}
    message_override = message_override or {}
    s = g.x[:, 0].double().numpy()
    w = g.edge_attr[:, 0].double().numpy()
    src, dst = g.edge_index.numpy()
    d = B * (1 - s)
    states = [d]
    for t in range(steps):
        sender = d[src].copy()
        for (tt, e), val in message_override.items():
            if tt == t:
                sender[e] = val
        msg = np.maximum(sender + w, 0)
        new = np.full(len(d), np.inf)
        np.minimum.at(new, dst, msg)
        for (tt, u), val in override.items():
            if tt == t:
                new[u] = val
        d = new
        states.append(d)
    return states


def roc_auc(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """ROC AUC by the Mann-Whitney statistic (ties count one half)."""
    scores, labels = scores.double().flatten(), labels.bool().flatten()
    pos, neg = scores[labels], scores[~labels]
    greater = (pos[:, None] > neg[None, :]).double().sum()
    ties = (pos[:, None] == neg[None, :]).double().sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def no_hooks_left(model: HookedGNN) -> bool:
    return all(i.num_fwd == 0 and i.num_bwd == 0 for i in model.list_hooks())
