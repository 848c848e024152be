"""PyG data in hookgnn: Graph.from_pyg keeps every attribute, metrics from a PyG loss,
and wrapped models called on hookgnn Graphs (keyword and ``forward(data)`` models)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hookgnn import Field, Graph
from hookgnn.metrics.per_graph import from_loss

pyg_data = pytest.importorskip("torch_geometric.data")
pyg = pytest.importorskip("torch_geometric.nn")
from hookgnn.interop import from_pyg  # noqa: E402


def _data(n: int, seed: int) -> pyg_data.Data:
    gen = torch.Generator().manual_seed(seed)
    ei = torch.tensor([[i for i in range(n - 1)], [i + 1 for i in range(n - 1)]])
    return pyg_data.Data(x=torch.randn(n, 2, generator=gen), edge_index=ei, edge_attr=torch.rand(n - 1, generator=gen),
                         y=torch.randn(n, generator=gen), train_mask=torch.arange(n) % 2 == 0,
                         reachable=torch.ones(n, dtype=torch.long), edge_label=torch.rand(n - 1, 3, generator=gen),
                         target=torch.randn(1, 4, generator=gen), source=torch.tensor(seed))


def test_from_pyg_keeps_node_edge_and_graph_attributes_as_fields():
    datas = [_data(4, 0), _data(3, 1)]
    g = Graph.from_pyg(pyg_data.Batch.from_data_list(datas))
    assert g.num_graphs == 2 and g.edge_attr.shape == (5, 1)
    want = {"y": "node", "train_mask": "node", "reachable": "node", "edge_label": "edge", "target": "graph",
            "source": "graph"}
    assert {k: f.location for k, f in g.fields.items()} == want
    for i, d in enumerate(datas):
        one = g.graph(i)
        for key in ("y", "train_mask", "reachable", "edge_label"):
            assert torch.equal(one[key], d[key])
        assert torch.equal(one["target"], d.target) and one["source"].tolist() == [i]
    single = Graph.from_pyg(datas[0])
    assert single["source"].tolist() == [0] and single["train_mask"].dtype == torch.bool
    back = Graph.from_pyg(g.to_pyg())
    assert {k: f.location for k, f in back.fields.items()} == want
    assert torch.equal(back["edge_label"], g["edge_label"])


def test_from_loss_with_a_target_is_the_loss_of_each_graph_alone():
    g = Graph.from_pyg(pyg_data.Batch.from_data_list([_data(4, 0), _data(3, 1), _data(5, 2)]))
    out = torch.randn(g.num_nodes, 1)
    for loss in (F.l1_loss, F.mse_loss, F.smooth_l1_loss):
        got = from_loss(loss, target="y")(out, g)
        want = [loss(out[g.batch == i].squeeze(-1), g["y"][g.batch == i]) for i in range(3)]
        torch.testing.assert_close(got, torch.stack(want))


def test_from_loss_with_a_data_callable_sees_each_graphs_data():
    g = Graph.from_pyg(pyg_data.Batch.from_data_list([_data(4, 0), _data(3, 1)]))
    out = torch.randn(g.num_nodes)
    seen = []

    def masked_mse(pred, data):  # noqa: ANN001, ANN202 - the PyG training-loop form
        seen.append(data.num_nodes)
        return F.mse_loss(pred[data.train_mask], data.y[data.train_mask])

    got = from_loss(masked_mse)(out, g)
    assert seen == [4, 3]
    for i in range(2):
        rows, d = g.batch == i, g.graph(i)
        torch.testing.assert_close(got[i], F.mse_loss(out[rows][d["train_mask"]], d["y"][d["train_mask"]]))


def test_from_loss_explains_outputs_it_cannot_place():
    g = Graph(x=torch.zeros(3, 1), edge_index=torch.tensor([[0], [1]]), fields={"y": Field(torch.zeros(3), "node")})
    with pytest.raises(ValueError, match="7 rows"):
        from_loss(F.l1_loss, target="y")(torch.zeros(7), g)
    with pytest.raises(TypeError, match="output=<name>"):
        from_loss(F.l1_loss, target="y")({"d": torch.zeros(3)}, g)


class KeywordNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = pyg.GCNConv(2, 3)
        self.lin = nn.Linear(3, 1)

    def forward(self, x, edge_index, edge_weight=None, batch=None):  # noqa: ANN001, ANN201
        h = self.conv(x, edge_index, edge_weight).relu()
        return self.lin(h) + (0 if batch is None else batch.unsqueeze(-1).float())


class DataNet(KeywordNet):
    def forward(self, data):  # noqa: ANN001, ANN201
        return super().forward(data.x, data.edge_index, data.edge_attr.flatten(), data.batch)


@pytest.mark.parametrize("cls", [KeywordNet, DataNet])
def test_a_wrapped_model_called_on_a_hookgnn_graph_gets_the_graphs_tensors(cls):
    torch.manual_seed(0)
    net = cls()
    batch = pyg_data.Batch.from_data_list([_data(4, 0), _data(3, 1)])
    want = net(batch) if cls is DataNet else net(batch.x, batch.edge_index, batch.edge_attr, batch.batch)
    hooked = from_pyg(net)
    got = hooked(Graph.from_pyg(batch))
    torch.testing.assert_close(got, want)
    direct = hooked(batch) if cls is DataNet else hooked(batch.x, batch.edge_index, batch.edge_attr, batch.batch)
    torch.testing.assert_close(direct, want)
    assert {"hook_x", "conv.hook_message"} <= set(hooked.hook_dict)
    # input hook points patch the model's inputs, for a Data argument too (without changing it)
    x_obj, x_before = batch.x, batch.x.clone()
    args = (batch,) if cls is DataNet else (batch.x, batch.edge_index, batch.edge_attr, batch.batch)
    hooked.run_with_hooks(*args, fwd_hooks=[("hook_x", lambda x, hook: 2 * x)])
    assert batch.x is x_obj and torch.equal(batch.x, x_before)  # the caller's data is untouched
    doubled = hooked.run_with_hooks(Graph.from_pyg(batch), fwd_hooks=[("hook_x", lambda x, hook: 2 * x)])
    want2 = net(batch.clone().update({"x": 2 * batch.x})) if cls is DataNet else \
        net(2 * batch.x, batch.edge_index, batch.edge_attr, batch.batch)
    torch.testing.assert_close(doubled, want2)


def test_a_forward_that_needs_an_unknown_argument_names_it():
    class Odd(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = pyg.GCNConv(2, 2)

        def forward(self, x, edge_index, temperature):  # noqa: ANN001, ANN201
            return self.conv(x, edge_index) / temperature

    g = Graph.from_pyg(_data(3, 0))
    with pytest.raises(TypeError, match="temperature"):
        from_pyg(Odd())(g)
    hooked = from_pyg(Odd(), inputs=lambda gr: ((gr.x, gr.edge_index, 2.0), {}))
    assert hooked(g).shape == (3, 2)
