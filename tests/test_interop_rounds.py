"""Rounds of wrapped PyG models: every MessagePassing call its own hook points, the round
protocol, the unfused path, and hooks that never stay on the original model."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

pyg = pytest.importorskip("torch_geometric.nn")
from hookgnn.interop import StructureError, from_pyg  # noqa: E402

T, D = 4, 3
EDGES = torch.tensor([[0, 1, 2, 3, 1, 2], [1, 2, 3, 0, 1, 0]])


class Recurrent(nn.Module):
    """One GIN layer applied ``steps`` times (weight-tied), a shared ReLU module between calls."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = pyg.GINConv(nn.Sequential(nn.Linear(D, 5), nn.ReLU(), nn.Linear(5, D)))
        self.act = nn.ReLU()

    def forward(self, x, edge_index, steps: int = T):  # noqa: ANN001, ANN201
        for t in range(steps):
            x = self.conv(x, edge_index)
            if t < steps - 1:
                x = self.act(x)
        return x


def _x(seed: int = 0) -> torch.Tensor:
    return torch.randn(4, D, generator=torch.Generator().manual_seed(seed))


def _no_hooks_on(model: nn.Module) -> bool:
    for m in model.modules():
        if m._forward_hooks or m._forward_pre_hooks:
            return False
        for name in ("_propagate_forward_pre_hooks", "_propagate_forward_hooks", "_message_forward_pre_hooks",
                     "_message_forward_hooks", "_aggregate_forward_pre_hooks", "_aggregate_forward_hooks"):
            if getattr(m, name, None):
                return False
    return True


def test_one_conv_applied_t_times_gives_t_distinct_rounds_in_the_cache():
    torch.manual_seed(0)
    net = Recurrent()
    seen: list[torch.Tensor] = []
    handle = net.conv.register_message_forward_hook(lambda m, inp, out: seen.append(out.detach().clone()))
    try:
        want = net(_x(), EDGES)
    finally:
        handle.remove()
    hooked = from_pyg(net)
    out, cache = hooked.run_with_cache(_x(), EDGES)
    torch.testing.assert_close(out, want, atol=0, rtol=0)
    assert hooked.num_rounds == T and cache.rounds == list(range(T))
    names = [hooked.round_hook("message", t) for t in range(T)]
    assert names == [f"conv.calls.{t}.hook_message" for t in range(T)]
    for t in range(T):
        torch.testing.assert_close(cache["message", t], seen[t], atol=0, rtol=0)  # PyG's own hook, call t
    assert not torch.equal(cache["message", 0], cache["message", 1])  # never overwritten
    assert cache.stack("message").shape == (T, EDGES.shape[1], D)
    assert hooked.counterparts("conv.calls.2.nn.0.hook_out") == [f"conv.calls.{t}.nn.0.hook_out" for t in range(T)]
    assert [hooked.state_hook(t) for t in (0, 2, T)] == ["conv.calls.0.hook_input", "conv.calls.2.hook_input",
                                                         f"conv.calls.{T - 1}.hook_output"]
    assert all(hooked.round_module(t) is net.conv for t in range(T))
    assert [f"act.calls.{j}.hook_out" in hooked.hook_dict for j in range(T - 1)] == [True] * (T - 1)
    torch.testing.assert_close(cache["act.calls.1.hook_out"], F.relu(cache["conv.calls.1.hook_output"]))


def test_hooks_of_one_round_change_that_round_only():
    torch.manual_seed(0)
    net = Recurrent()
    hooked = from_pyg(net, example=(_x(), EDGES))
    _, clean = hooked.run_with_cache(_x(), EDGES)
    zero = lambda act, hook: torch.zeros_like(act)  # noqa: E731
    with hooked.hooks(fwd_hooks=[("conv.calls.2.hook_aggregation", zero)]):
        _, cache = hooked.run_with_cache(_x(), EDGES)
    torch.testing.assert_close(cache["aggregation", 1], clean["aggregation", 1])
    assert cache["aggregation", 2].abs().sum() == 0
    assert not torch.equal(cache["update", 3], clean["update", 3])
    assert _no_hooks_on(net) and all(i.num_fwd == 0 for i in hooked.list_hooks())


def test_no_hook_stays_on_the_original_even_when_a_hook_raises():
    torch.manual_seed(0)
    net = Recurrent()
    hooked = from_pyg(net, example=(_x(), EDGES))

    def boom(act, hook):  # noqa: ANN001, ANN202
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        hooked.run_with_hooks(_x(), EDGES, fwd_hooks=[("conv.calls.1.hook_message", boom)])
    assert _no_hooks_on(net)
    assert all(i.num_fwd == 0 and i.num_bwd == 0 for i in hooked.list_hooks())
    torch.testing.assert_close(hooked(_x(), EDGES), net(_x(), EDGES), atol=0, rtol=0)


def test_a_forward_that_makes_more_calls_than_the_discovery_raises_and_leaves_nothing_behind():
    torch.manual_seed(0)
    net = Recurrent()
    hooked = from_pyg(net, example=(_x(), EDGES, 2))
    with pytest.raises(StructureError, match="discovery forward did not run"):
        hooked(_x(), EDGES, 3)
    assert _no_hooks_on(net)
    hooked.discover(_x(), EDGES, 3)
    assert hooked.num_rounds == 3


def test_hook_points_are_found_on_the_first_call_and_not_before():
    hooked = from_pyg(Recurrent())
    with pytest.raises(RuntimeError, match="first forward"):
        hooked.hook_dict  # noqa: B018
    _, cache = hooked.run_with_cache(_x(), EDGES)  # discovers first
    assert "conv.calls.0.hook_src" in cache


class SparseGIN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = pyg.GINConv(nn.Sequential(nn.Linear(D, D), nn.ReLU(), nn.Linear(D, D)))

    def forward(self, x, adj_t):  # noqa: ANN001, ANN201
        return self.conv(x, adj_t)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_a_sparse_adjacency_runs_unfused_so_every_message_is_hooked():
    torch.manual_seed(0)
    net = SparseGIN()
    adj_t = torch.sparse_coo_tensor(EDGES.flip(0), torch.ones(EDGES.shape[1]), (4, 4)).coalesce()
    assert net.conv.fuse  # PyG would use message_and_aggregate and skip message hooks
    hooked = from_pyg(net)
    out, cache = hooked.run_with_cache(_x(), adj_t)
    torch.testing.assert_close(out, net(_x(), adj_t), atol=1e-6, rtol=1e-6)
    assert cache["conv.hook_message"].shape == (EDGES.shape[1], D)
    assert net.conv.fuse and _no_hooks_on(net)


class InplaceMLP(pyg.MessagePassing):
    def __init__(self) -> None:
        super().__init__(aggr="max")
        self.lin = nn.Linear(D, D)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x, edge_index):  # noqa: ANN001, ANN201
        return self.propagate(edge_index, x=x)

    def message(self, x_j):  # noqa: ANN001, ANN201
        return self.act(self.lin(x_j))


def test_inplace_activations_do_not_overwrite_cached_pre_activations():
    torch.manual_seed(0)
    conv = InplaceMLP()
    hooked = from_pyg(conv)
    out, cache = hooked.run_with_cache(_x(), EDGES)
    pre = cache["lin.hook_out"]
    assert (pre < 0).any()
    torch.testing.assert_close(cache["act.hook_out"], pre.relu())
    torch.testing.assert_close(out, conv(_x(), EDGES))
    assert conv.act.inplace is True  # restored after the call


class Opaque(pyg.MessagePassing):
    """A layer whose forward never calls propagate (like a fused kernel)."""

    def __init__(self) -> None:
        super().__init__(aggr="sum")
        self.lin = nn.Linear(D, D)

    def forward(self, x, edge_index):  # noqa: ANN001, ANN201
        return self.lin(x).index_add(0, edge_index[1], x[edge_index[0]])


def test_hook_points_a_fused_layer_cannot_have_raise_saying_why():
    hooked = from_pyg(Opaque(), example=(_x(), EDGES))
    assert "hook_input" in hooked.hook_dict and "lin.hook_out" in hooked.hook_dict
    with pytest.raises(KeyError, match="without calling propagate"):
        hooked.add_hook("hook_message", lambda a, hook: a)


def test_compiled_models_are_refused_with_the_fix():
    with pytest.raises(TypeError, match="before compiling"):
        from_pyg(torch.compile(Recurrent()))


def test_round_calls_give_each_rounds_module_and_inputs():
    torch.manual_seed(0)
    net = Recurrent()
    hooked = from_pyg(net, example=(_x(), EDGES))
    with hooked.round_calls() as calls:
        _, cache = hooked.run_with_cache(_x(), EDGES)
    assert [c.t for c in calls] == list(range(T)) and all(c.module is net.conv for c in calls)
    for t, call in enumerate(calls):
        torch.testing.assert_close(call.module(*call.args, **call.kwargs), cache["output", t])
    assert _no_hooks_on(net)
