"""Tiny seeded models of every kind hookgnn patches, for the conformance matrix.

Each builder returns a :class:`Case`: the hooked model that hookgnn's functions get,
the same network as a plain ``nn.Module`` with a plain call on a hookgnn ``Graph``
(for the references in :mod:`plain_torch`), a clean and a corrupted graph of one
structure, and a metric. Kinds:

* ``hooked-<name>``: ``HookedGNN`` with every processor of ``hookgnn.nn.PROCESSORS``;
* ``layers-minar``: ``HookedGNN.from_layers`` with two ``MLPConv`` rounds, 1 -> 8 -> 1 (MINAR);
* ``task-dag_shortest_paths``: ``HookedGNN`` on a CLRS task's stored graphs (pointer edges);
* ``pyg-*``: PyG models wrapped with ``hookgnn.from_pyg``: GINE, GCN (adds self-loops), LGConv,
  GAT, PyG's ``BasicGNN`` GIN, a SALSA-CLRS-like recurrent GRU + LayerNorm processor with
  ``forward(data)`` reading the fields ``data.s`` and ``data.pos``, and MINAR's network.

The corrupted graph moves every float input a little (``EPS``), so first-order
estimators are close to exact patching, and (for the kinds marked ``field_target``)
carries other target values: a metric must read targets from the clean graph.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import hookgnn
from hookgnn import Field, FeatureSpec, Graph, HookedGNN, HookedRootModule
from hookgnn.nn import PROCESSORS, MLPConv
from hookgnn.metrics import OutputSum, PointerLogProb
from hookgnn.metrics.per_graph import Metric, from_loss

pyg = __import__("pytest").importorskip("torch_geometric.nn")
from torch_geometric.nn.models.basic_gnn import BasicGNN  # noqa: E402

D, N, EPS = 8, 6, 0.1
EDGE_INDEX = torch.tensor([[0, 1, 2, 3, 4, 5, 0, 2, 4, 1], [1, 2, 3, 4, 5, 0, 3, 5, 1, 1]])  # a self-loop at 1
E = EDGE_INDEX.shape[1]
#: One incoming edge per node (the pointer target of the clean and of the corrupted graph).
POINTERS = (torch.tensor([5, 0, 1, 2, 3, 4]), torch.tensor([5, 9, 1, 6, 3, 7]))


@dataclass
class Case:
    """A model kind on one pair of graphs (see the module doc)."""

    name: str
    model: HookedRootModule
    raw: nn.Module
    call: Callable[[nn.Module, Graph], Any]
    clean: Graph
    corrupted: Graph
    metric: Metric
    #: The modules whose successive calls are the rounds (plain forward hooks count them).
    rounds: list[nn.Module]
    #: PyG: the argument of ``message`` that carries the source state (patched row by row);
    #: ``None``: the round module's own ``hook_src`` module is called on the source rows.
    message_arg: str | None
    #: The float inputs a straight-line interpolation moves (``x``, ``edge_attr``, fields).
    inputs: tuple[str, ...]
    field_target: bool = False
    second: Graph | None = None  # another corrupted graph, for the mean over two pairs


def _pointer(k: int) -> torch.Tensor:
    pi = torch.zeros(E)
    pi[POINTERS[k]] = 1.0
    return pi


def _graphs(node_in: int, fields: tuple[str, ...] = ()) -> tuple[Graph, Graph, Graph]:
    """A clean graph and two corrupted ones (inputs moved by ``EPS``, other targets)."""
    gen = torch.Generator().manual_seed(0)
    extra = {name: Field(torch.randn(N, 1, generator=gen), "node") for name in fields}
    clean = Graph(x=torch.randn(N, node_in, generator=gen), edge_index=EDGE_INDEX, edge_attr=torch.rand(E, 1, generator=gen),
                  fields={"y": Field(torch.randn(N, generator=gen), "node"), "pi": Field(_pointer(0), "edge"), **extra})

    def corrupt() -> Graph:
        moved = {n: Field(f.value + EPS * torch.randn(f.value.shape, generator=gen), "node") for n, f in extra.items()}
        return clean.replace(x=clean.x + EPS * torch.randn(clean.x.shape, generator=gen),
                             edge_attr=clean.edge_attr + EPS * torch.randn(E, 1, generator=gen),
                             fields={"y": Field(torch.randn(N, generator=gen), "node"), "pi": Field(_pointer(1), "edge"),
                                     **moved})

    return clean, corrupt(), corrupt()


def _live_messages(linears: Any) -> None:
    """Shift the last message Linear up: at a random init, relu(message) is 0 on most edges and
    a min aggregation of zeros ignores every message."""
    with torch.no_grad():
        for lin in linears:
            lin.bias.add_(1.0)


def _target() -> torch.Tensor:
    return torch.randn(N, generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------------ hookgnn's own
def hooked(processor: str) -> Case:
    torch.manual_seed(0)
    spec = {"d": FeatureSpec("output", "node", "scalar"), "pi": FeatureSpec("output", "node", "pointer")}
    model = HookedGNN(processor, D, node_in=2, edge_in=1, spec=spec, max_steps=3).eval()
    clean, corrupted, second = _graphs(2)
    # gine: a pointer metric whose target is a field of the graph (it differs in the corrupted one)
    field = processor == "gine"
    metric = PointerLogProb("pi") if field else OutputSum("d")
    return Case(f"hooked-{processor}", model, model, lambda m, g: m(g), clean, corrupted, metric, list(model.layers),
                None, ("x", "edge_attr"), field, second)


def layers_minar() -> Case:
    torch.manual_seed(0)
    model = HookedGNN.from_layers([MLPConv(1, D, d_edge=1, d_mlp=D), MLPConv(D, 1, d_edge=1, d_mlp=D)]).eval()
    _live_messages(layer.message_mlp.lin_out for layer in model.layers)
    clean, corrupted, second = _graphs(1)
    return Case("layers-minar", model, model, lambda m, g: m(g), clean, corrupted,
                from_loss(F.mse_loss, target=_target(), output="out"), list(model.layers), None, ("x", "edge_attr"),
                second=second)


# ------------------------------------------------------------------- wrapped PyG
class GINENet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin_in = nn.Linear(2, D)
        self.convs = nn.ModuleList([pyg.GINEConv(nn.Sequential(nn.Linear(D, D), nn.ReLU(), nn.Linear(D, D)), edge_dim=1)
                                    for _ in range(2)])
        self.act = nn.ReLU()
        self.lin_out = nn.Linear(D, 1)

    def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
        h = self.lin_in(x)
        for conv in self.convs:
            h = self.act(conv(h, edge_index, edge_attr))
        return self.lin_out(h)


class GCNNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList([pyg.GCNConv(2, D), pyg.GCNConv(D, 1)])

    def forward(self, x, edge_index):  # noqa: ANN001, ANN201
        return self.convs[1](torch.relu(self.convs[0](x, edge_index)), edge_index)


class LGNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin_in, self.lin_out = nn.Linear(2, D), nn.Linear(D, 1)
        self.convs = nn.ModuleList([pyg.LGConv() for _ in range(2)])
        self.act = nn.Tanh()

    def forward(self, x, edge_index):  # noqa: ANN001, ANN201
        h = self.lin_in(x)
        for conv in self.convs:
            h = self.act(conv(h, edge_index))
        return self.lin_out(h)


class GATNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList([pyg.GATConv(2, D, heads=2, concat=False, add_self_loops=False, edge_dim=1),
                                    pyg.GATConv(D, 1, heads=2, concat=False, add_self_loops=False, edge_dim=1)])
        self.act = nn.ELU()

    def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
        return self.convs[1](self.act(self.convs[0](x, edge_index, edge_attr)), edge_index, edge_attr)


class SalsaLike(nn.Module):
    """A SALSA-CLRS-like processor: fields ``s`` and ``pos`` through Linear encoders,
    ``h += ...``, then one GINE conv applied 3 times with a GRU cell and a LayerNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.enc_pos, self.enc_s = nn.Linear(1, D), nn.Linear(1, D)
        self.conv = pyg.GINEConv(nn.Sequential(nn.Linear(D, D), nn.ReLU(), nn.Linear(D, D)), edge_dim=1)
        self.gru, self.norm, self.dec = nn.GRUCell(D, D), nn.LayerNorm(D), nn.Linear(D, 1)

    def forward(self, data):  # noqa: ANN001, ANN201
        h = self.enc_pos(data.pos)
        h += self.enc_s(data.s)
        for _ in range(3):
            h = self.norm(self.gru(self.conv(h, data.edge_index, data.edge_attr), h))
        return self.dec(h)


class MinAggConv(pyg.MessagePassing):
    """MINAR's layer: m_ij = relu(MLP([x_j, e_ij])), min aggregation, x'_i = MLP([a_i, x_i])."""

    def __init__(self, d_in: int, d_out: int, width: int = D) -> None:
        super().__init__(aggr="min")
        self.msg_mlp = nn.Sequential(nn.Linear(d_in + 1, width), nn.ReLU(), nn.Linear(width, d_out))
        self.upd_mlp = nn.Sequential(nn.Linear(d_out + d_in, width), nn.ReLU(), nn.Linear(width, d_out))

    def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
        return self.propagate(edge_index, x=x, edge_attr=edge_attr)

    def message(self, x_j, edge_attr):  # noqa: ANN001, ANN201
        return F.relu(self.msg_mlp(torch.cat([x_j, edge_attr], dim=-1)))

    def update(self, aggr_out, x):  # noqa: ANN001, ANN201
        return self.upd_mlp(torch.cat([aggr_out, x], dim=-1))


class MinarWidths(nn.Module):
    """MINAR's network at other widths: two min-aggregation rounds ``d_in -> d_mid -> d_out``, MLPs ``width``
    wide (``Linear -> nn.ReLU -> Linear``), an ``nn.ReLU`` between the rounds."""

    def __init__(self, d_in: int, d_mid: int, d_out: int, width: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList([MinAggConv(d_in, d_mid, width), MinAggConv(d_mid, d_out, width)])
        self.act = nn.ReLU()

    def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
        return self.convs[1](self.act(self.convs[0](x, edge_index, edge_attr)), edge_index, edge_attr)


def minar_widths_case(batch: Any, widths: tuple[int, int, int, int], seed: int,
                      integral: bool) -> tuple[MinarWidths, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A frozen float64 :class:`MinarWidths` seeded with ``seed`` and its inputs ``(x, edge_index, edge_attr)``
    from ``batch``; ``integral``: integral weights and inputs (exact zeros before the relus, tied messages in
    the min)."""
    d_in, d_mid, d_out, width = widths
    torch.manual_seed(seed)
    net = MinarWidths(d_in, d_mid, d_out, width).double().requires_grad_(False)
    if integral:
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randint(-2, 3, p.shape, dtype=torch.float64))
    x = batch.x[:, :d_in].round() if integral else batch.x[:, :d_in]
    e = batch.edge_attr.round() if integral else batch.edge_attr
    return net, x, batch.edge_index, e


class MinarNet(BasicGNN):
    supports_edge_weight, supports_edge_attr, supports_norm_batch = False, True, False

    def init_conv(self, in_channels: int, out_channels: int, **kwargs: Any) -> MinAggConv:
        return MinAggConv(in_channels, out_channels)


def _seeded(seed: int, make: Callable[..., nn.Module], *args: Any, **kwargs: Any) -> nn.Module:
    torch.manual_seed(seed)  # seed 0 gives a GIN whose output is the same at every node
    return make(*args, **kwargs)


def _minar() -> MinarNet:
    net = MinarNet(1, D, num_layers=2, out_channels=1)
    _live_messages(conv.msg_mlp[2] for conv in net.convs)
    return net


def _xe(m: nn.Module, g: Graph) -> Any:
    return m(g.x, g.edge_index, g.edge_attr)


def _x(m: nn.Module, g: Graph) -> Any:
    return m(g.x, g.edge_index)


#: name -> (builder, plain call on a Graph, node input width); seeds where a tiny net is not dead (constant output).
PYG: dict[str, tuple[Callable[[], nn.Module], Callable[[nn.Module, Graph], Any], int]] = {
    "gine": (GINENet, _xe, 2),
    "gcn": (GCNNet, _x, 2),
    "lgconv": (LGNet, _x, 2),
    "gat": (GATNet, _xe, 2),
    "basic-gin": (lambda: _seeded(1, pyg.models.GIN, 2, D, num_layers=3, out_channels=1), _x, 2),
    "salsa": (SalsaLike, lambda m, g: m(g.to_pyg()), 1),
    "minar": (lambda: _minar(), lambda m, g: m(g.x, g.edge_index, edge_attr=g.edge_attr), 1),
}


def wrapped(name: str) -> Case:
    make, call, node_in = PYG[name]
    torch.manual_seed(0)
    raw = make().eval()
    fields = ("s", "pos") if name == "salsa" else ()
    clean, corrupted, second = _graphs(node_in, fields)
    field = name == "gine"  # a PyG loss with the target field y (it differs in the corrupted graph)
    metric = from_loss(F.mse_loss, target="y") if field else from_loss(F.mse_loss, target=_target())
    model = hookgnn.from_pyg(raw, example=clean)
    rounds = [m for m in raw.modules() if isinstance(m, pyg.MessagePassing)]
    return Case(f"pyg-{name}", model, raw, call, clean, corrupted, metric, rounds, "x_j",
                ("x", "edge_attr", *fields), field, second)


# ------------------------------------------------------------ a CLRS task's own graphs
def task_dag_shortest_paths() -> Case:
    """A HookedGNN on dag_shortest_paths: its stored graph of ``N`` nodes (the sampled DAG: its
    ``topo_h`` points to any node, stored as node numbers, so no pointer edges); corrupted graphs
    move ``x`` and ``edge_attr`` by ``EPS`` and carry the targets of another source. (Graph seed 1:
    on seed 0's 13 edges the effects of the last round's messages on the summed logits cancel to
    within the audit's 1e-5 floor.)"""
    from hookgnn.tasks import get_task
    from hookgnn.tasks.corruptions import corrupt
    from hookgnn.tasks.pointer_edges import er_dag

    task = get_task("dag_shortest_paths")
    clean = task.sample(1, er_dag, seed=1, n=N, p=0.5)
    gen = torch.Generator().manual_seed(0)

    def corrupted(seed: int) -> Graph:
        other = corrupt(task, clean, "resample_source", seed=seed)
        return other.replace(x=clean.x + EPS * torch.randn(clean.x.shape, generator=gen),
                             edge_attr=clean.edge_attr + EPS * torch.randn(clean.edge_attr.shape, generator=gen))

    torch.manual_seed(0)
    spec = {k: s for k, s in task.spec.items() if s.stage == "output"}
    model = HookedGNN("mpnn", D, node_in=clean.x.shape[1], edge_in=clean.edge_attr.shape[1], spec=spec,
                      max_steps=3).eval()
    # the summed pointer logits: single messages move it well above the matrix's floor (the log-probability
    # of an untrained model barely moves; test_edge_pointers checks patching that metric on every new task)
    return Case("task-dag_shortest_paths", model, model, lambda m, g: m(g), clean, corrupted(0),
                OutputSum("pi", location="edge"), list(model.layers), None, ("x", "edge_attr"), False, corrupted(1))


KINDS: dict[str, Callable[[], Case]] = {
    **{f"hooked-{p}": functools.partial(hooked, p) for p in PROCESSORS},
    "layers-minar": layers_minar,
    **{f"pyg-{n}": functools.partial(wrapped, n) for n in PYG},
    "task-dag_shortest_paths": task_dag_shortest_paths,
}


@functools.cache
def case(kind: str) -> Case:
    """The (cached) case of a kind; tests must not change its model."""
    return KINDS[kind]()
