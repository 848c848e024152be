"""The published Bellman-Ford setup of MINAR (arXiv 2602.21442), written from its description.

Used by tutorials 4 and 5. Everything here is plain PyTorch / PyTorch Geometric, the way a
PyG user would have written it before meeting hookgnn; the tutorials bring the trained
network into hookgnn with :func:`hookgnn.from_pyg`.

* **Network** (:class:`BellmanFordNet`): two min-aggregation ``MessagePassing`` layers in a
  PyG ``BasicGNN``, widths ``d_in -> 8 -> d_out``; message
  :math:`m_{uv} = \\mathrm{relu}(\\mathrm{MLP}_m([x_u, w_{uv}]))` (64 wide), aggregation
  :math:`a_v = \\min_u m_{uv}`, update :math:`x'_v = \\mathrm{MLP}_u([a_v, x_v])`, two-layer
  MLPs 64 wide, a relu between the layers.
* **Data**: undirected weighted graphs stored with both arcs and a zero-weight self-loop
  at every node; node input ``x = 0`` at the source (node 0) and ``BIG = 100`` elsewhere.
  A two-layer network can relax each edge twice, so the label is the 2-hop Bellman-Ford
  distance :math:`d_2(v)` (the shortest walk of at most 2 edges) on the nodes it reaches
  (``reach``). Training graphs: 2-edge paths with integer weights ``a in 0..4``,
  ``b in 0..5``, a 1-edge and a 2-edge path with weights ``(1)``, ``(1, 0)``, four 3-edge
  paths with weights ``U(1, 10)``, and four 4-edge paths whose input already holds their
  2-hop distances (so the network learns to keep a correct estimate). Test graphs:
  3- and 4-cycles, balanced trees, complete and Erdős–Rényi (p = 0.5) graphs with
  weights ``U(1, 10)``.
* **Training**: full batch, AdamW (lr 1e-3), loss = MSE on reached nodes divided by their
  number, plus ``1e-3`` times the L1 norm of every parameter; the parallel network adds
  ``25 x`` a class-balanced BCE of its reach logit.
* **Test loss**: the multiplicative error :math:`|1 - d_2(v) / \\hat d(v)|` averaged over
  the reached nodes of each graph, then over graphs. The source (label 0, where the ratio
  says nothing) is left out.

Differences from the published notebooks, on purpose: the labels are the 2-hop distances
a two-layer network can compute (the notebooks label reached nodes with their full
shortest distance); test graphs have at most ``max_nodes`` nodes (the notebooks go to 200)
so that attribution runs in seconds on a CPU; the ``H_K`` training graph is left out.
"""

from __future__ import annotations

import itertools
from typing import Any

import networkx as nx
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing
from torch_geometric.nn.models.basic_gnn import BasicGNN

from hookgnn import Graph
from hookgnn.graph import Field
from hookgnn.metrics.per_graph import per_graph_mean

BIG = 100.0  # the input of every node but the source ("not reached yet")
WIDTH = 64  # hidden width of the message and update MLPs
HOPS = 2  # rounds of message passing, so edges a node's label may use


# ----------------------------------------------------------------------------- network
class MinAggConv(MessagePassing):
    """m_uv = relu(MLP_m([x_u, w_uv])) (64 wide); a_v = min_u m_uv; x'_v = MLP_u([a_v, x_v])."""

    def __init__(self, d_in: int, d_out: int, edge_dim: int = 1) -> None:
        super().__init__(aggr="min")
        self.msg_mlp = nn.Sequential(nn.Linear(d_in + edge_dim, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH))
        self.msg_act = nn.ReLU()
        self.upd_mlp = nn.Sequential(nn.Linear(WIDTH + d_in, WIDTH), nn.ReLU(), nn.Linear(WIDTH, d_out))

    def forward(self, x: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        return self.propagate(edge_index, x=x, edge_attr=edge_attr)

    def message(self, x_j: Tensor, edge_attr: Tensor) -> Tensor:
        return self.msg_act(self.msg_mlp(torch.cat([x_j, edge_attr], dim=-1)))

    def update(self, aggr_out: Tensor, x: Tensor) -> Tensor:
        return self.upd_mlp(torch.cat([aggr_out, x], dim=-1))


class BellmanFordNet(BasicGNN):
    """``BellmanFordNet(d_in, 8, num_layers=2, out_channels=d_out)``: the published network."""

    supports_edge_weight = False
    supports_edge_attr = True
    supports_norm_batch = False

    def init_conv(self, in_channels: int, out_channels: int, **kwargs: Any) -> MessagePassing:
        return MinAggConv(in_channels, out_channels)


def published_network(d_in: int = 1, d_out: int = 1, seed: int = 0) -> BellmanFordNet:
    """The network of the study, ``d_in -> 8 -> d_out`` (1 -> 8 -> 1 for Bellman-Ford alone)."""
    torch.manual_seed(seed)
    return BellmanFordNet(d_in, 8, num_layers=HOPS, out_channels=d_out)


# -------------------------------------------------------------------------------- data
def labelled(n: int, src: Any, dst: Any, weight: Any, x: Any = None) -> Graph:
    """An undirected graph on ``n`` nodes (source 0) as the network sees it, with labels.

    Fields: ``y`` (the 2-hop distance, ``BIG`` where not reached), ``reach`` (reached in
    2 hops, the source included), ``scored`` (reached, not the source) and ``x_bfs``
    (1 at the source: the BFS input of the parallel network).
    """
    src, dst = np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
    w = np.asarray(weight, dtype=np.float32)
    loops = np.arange(n)
    s, d = np.concatenate([src, dst, loops]), np.concatenate([dst, src, loops])
    ww = np.concatenate([w, w, np.zeros(n, dtype=np.float32)])
    dist = np.full(n, np.inf)
    dist[0] = 0.0
    for _ in range(HOPS):  # synchronous relaxation of every arc, as the network does
        new = dist.copy()
        np.minimum.at(new, d, dist[s] + ww)
        dist = new
    reach = np.isfinite(dist)
    if x is None:
        x = np.where(loops == 0, 0.0, BIG)
    x_bfs = (loops == 0).astype(np.float32)
    node = lambda a, dtype=torch.float32: Field(torch.as_tensor(a, dtype=dtype), "node")  # noqa: E731
    return Graph(x=torch.as_tensor(x, dtype=torch.float32)[:, None], edge_index=torch.as_tensor(np.stack([s, d])),
                 edge_attr=torch.as_tensor(ww)[:, None],
                 fields={"y": node(np.where(reach, dist, BIG)), "reach": node(reach, torch.bool),
                         "scored": node(reach & (loops > 0), torch.bool), "x_bfs": node(x_bfs)})


def path(weights: Any, x: Any = None) -> Graph:
    """The path ``0 - 1 - ... - k`` with the given ``k`` edge weights (source: node 0)."""
    k = len(weights)
    return labelled(k + 1, range(k), range(1, k + 1), weights, x)


def training_set(seed: int = 0) -> Graph:
    """The 40 training graphs, as one batch."""
    rng = np.random.default_rng(seed)
    graphs = [path([a, b]) for a, b in itertools.product(range(5), range(6))]
    graphs += [path([1.0]), path([1.0, 0.0])]
    graphs += [path(rng.uniform(1, 10, 3)) for _ in range(4)]
    for _ in range(4):  # inputs already hold the 2-hop distances: keep them
        w = rng.uniform(1, 10, 4)
        graphs.append(path(w, x=path(w)["y"].numpy()))
    return Graph.collate(graphs)


def _from_networkx(g: nx.Graph, rng: np.random.Generator) -> Graph:
    e = np.asarray(list(g.edges()), dtype=np.int64).reshape(-1, 2)
    return labelled(g.number_of_nodes(), e[:, 0], e[:, 1], rng.uniform(1, 10, len(e)))


def test_set(per_family: int, max_nodes: int, seed: int = 1) -> Graph:
    """``5 * per_family`` test graphs (cycles of 3 and 4, balanced trees, complete and
    Erdős–Rényi graphs with 5 to ``max_nodes`` nodes), as one batch."""
    rng = np.random.default_rng(seed)
    graphs = []
    for _ in range(per_family):
        n, r, h = int(rng.integers(5, max_nodes + 1)), int(rng.integers(2, 4)), int(rng.integers(3, 5))
        for g in (nx.cycle_graph(3), nx.cycle_graph(4), nx.balanced_tree(r, h), nx.complete_graph(n),
                  nx.erdos_renyi_graph(n, 0.5, seed=int(rng.integers(1 << 30)))):
            graphs.append(_from_networkx(g, rng))
    return Graph.collate(graphs)


def with_bfs_input(g: Graph) -> Graph:
    """The parallel network's input: ``[x, x_bfs]`` per node."""
    return g.replace(x=torch.cat([g.x, g["x_bfs"][:, None]], 1))


def corrupt(g: Graph) -> Graph:
    """The corrupted twin used for attribution: every edge weight 0, every node input 0
    except a huge one (1000) at the source; for the parallel network the BFS input is
    1 everywhere except 0 at the source."""
    x = torch.zeros_like(g.x)
    x[g.ptr[:-1], 0] = 1000.0
    if x.shape[1] == 2:
        x[:, 1] = 1.0
        x[g.ptr[:-1], 1] = 0.0
    return g.replace(x=x, edge_attr=torch.zeros_like(g.edge_attr))


# ----------------------------------------------------------------------------- metrics
def _column(out: Tensor, col: int) -> Tensor:
    return out[:, col] if out.dim() == 2 else out


def distance_se(out: Tensor, g: Graph, col: int = 0) -> Tensor:
    """Per graph: mean squared distance error over the reached nodes (attribution metric)."""
    err = (_column(out, col) - g["y"]) ** 2
    return per_graph_mean(err, g.batch, g["reach"].float(), g.num_graphs)


def relative_error(out: Tensor, g: Graph, col: int = 0) -> Tensor:
    """Per graph: the multiplicative error ``|1 - y / y_hat|`` over reached non-source nodes."""
    pred = _column(out, col)
    pred = torch.where(pred.abs() < 1e-6, torch.full_like(pred, 1e-6), pred)  # a zero estimate: a huge error, not inf
    err = torch.where(g["scored"], (1 - g["y"] / pred).abs(), torch.zeros_like(pred))
    return per_graph_mean(err, g.batch, g["scored"].float(), g.num_graphs)


def reach_bce(out: Tensor, g: Graph) -> Tensor:
    """Per graph: BCE of the reach logit (column 1) against reached-in-2-hops."""
    err = F.binary_cross_entropy_with_logits(out[:, 1], g["reach"].float(), reduction="none")
    return per_graph_mean(err, g.batch, torch.ones_like(err), g.num_graphs)


def reach_accuracy(out: Tensor, g: Graph) -> Tensor:
    """Per graph: fraction of nodes whose reach logit has the right sign."""
    right = ((out[:, 1] > 0) == g["reach"]).float()
    return per_graph_mean(right, g.batch, torch.ones_like(right), g.num_graphs)


def both_tasks(out: Tensor, g: Graph) -> Tensor:
    """The parallel network's attribution metric: distance error plus BFS cross-entropy."""
    return distance_se(out, g) + 25.0 * reach_bce(out, g)


# ---------------------------------------------------------------------------- training
def train(net: nn.Module, data: Graph, epochs: int, *, bfs: bool = False, eta: float = 1e-3,
          checkpoint_every: int = 0) -> tuple[list[dict[str, float]], list[tuple[int, dict[str, Tensor]]]]:
    """Full-batch AdamW with L1 on every parameter; returns (history, checkpoints).

    Loss: ``MSE(reached) / #reached + eta * L1`` (plus ``25 * BCE(reach) / #nodes`` with
    ``bfs``, the positive class weighted by #unreached / #reached). ``history`` has one
    entry every ``max(1, epochs // 100)`` epochs; ``checkpoints`` a state dict every
    ``checkpoint_every`` epochs (and the last).
    """
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    reach, y = data["reach"], data["y"]
    n_reach = int(reach.sum())
    pos_weight = torch.tensor((data.num_nodes - n_reach) / n_reach)
    history, checkpoints = [], []
    for epoch in range(epochs):
        net.train()
        out = net(data.x, data.edge_index, edge_attr=data.edge_attr)
        mse = F.mse_loss(out[:, 0][reach], y[reach]) / n_reach
        loss = mse
        if bfs:
            loss = loss + 25.0 * F.binary_cross_entropy_with_logits(out[:, 1], reach.float(),
                                                                    pos_weight=pos_weight) / data.num_nodes
        l1 = sum(p.abs().sum() for p in net.parameters())
        opt.zero_grad()
        (loss + eta * l1).backward()
        opt.step()
        last = epoch == epochs - 1
        if epoch % max(1, epochs // 100) == 0 or last:
            history.append({"epoch": epoch, "mse": mse.item() * n_reach, "l1": l1.item(),
                            "l0": sum(int((p.abs() > 1e-3).sum()) for p in net.parameters())})
        if checkpoint_every and (epoch % checkpoint_every == 0 or last):
            checkpoints.append((epoch, {k: v.detach().clone() for k, v in net.state_dict().items()}))
    return history, checkpoints
