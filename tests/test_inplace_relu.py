"""A wrapped model's ``nn.ReLU`` in place over its ``nn.Linear``'s output (``hookgnn.interop.inplace_relu``).
Checked against PyG itself (the unwrapped model's outputs bit for bit, its ``torch.autograd.grad`` in float64 at the
inputs and at the pre-relu outputs a gradient tap reads) on random batches with isolated nodes, edgeless graphs,
self-loops, parallel edges and ties; and against the unwrapped model's pre-relu tensor wherever something outside
the fast path may keep it (a cache, a hook, a torch hook on either module, a global hook), where the relu is not
the layer's only reader, and for ``relu_`` itself (bits of -0.0 and NaN, its gradient, a node that saved its input)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_zoo import MinarWidths as Minar
from model_zoo import minar_widths_case
from strategies import batches
from torch import nn
from torch.nn.modules import module as torch_module

import hookgnn.interop.relu_linear as rl
from hookgnn import from_pyg
from hookgnn.cache.grad_taps import GradientTaps
from hookgnn.ops import compiled
from hookgnn.ops.backend import resolve_backend
from hookgnn.points import transient

pyg = pytest.importorskip("torch_geometric.nn")

pytestmark = pytest.mark.usefixtures("one_thread")

FIRST = [f"convs.{c}.{m}.0" for c in (0, 1) for m in ("msg_mlp", "upd_mlp")]  # the layers before the relus


def _count_inplace(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = rl.relu_
    monkeypatch.setattr(rl, "relu_", lambda x: calls.append(1) or original(x))
    monkeypatch.setattr(rl, "LARGE", 0)  # tiny graphs: let the fast relu take them
    return calls


def _pre_relu(net: nn.Module, *args: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The unwrapped model's output and the outputs of the layers in ``FIRST`` (by plain torch hooks)."""
    seen: dict[str, torch.Tensor] = {}
    handles = [net.get_submodule(p).register_forward_hook(lambda m, i, o, p=p: seen.__setitem__(p, o)) for p in FIRST]
    try:
        return net(*args), seen
    finally:
        for h in handles:
            h.remove()


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(batch=batches(min_graphs=1, max_graphs=3, min_nodes=0, max_nodes=6, max_edges=10, node_features=2,
                     edge_features=1, dtype=torch.float64),
       widths=st.sampled_from([(1, 8, 1, 64), (2, 3, 2, 16)]), seed=st.integers(0, 3), integral=st.booleans())
def test_tapped_relus_run_in_place_values_bit_for_bit_gradients_equal_pyg_autograd(batch, widths, seed, integral,
                                                                                  monkeypatch):
    calls = _count_inplace(monkeypatch)
    net, x, ei, e = minar_widths_case(batch, widths, seed, integral)
    hooked = from_pyg(net, example=(x, ei, e))
    taps, got_g = GradientTaps(), {}
    tap = transient(lambda act, hook: taps.tap(act, lambda g, n=hook.name: got_g.__setitem__(n, g)))
    names = [f"{p}.hook_out" for p in FIRST]
    for dtype in (torch.float32, torch.float64):  # values: bit for bit in both, with the taps on
        net.to(dtype)
        xs, es = x.to(dtype).requires_grad_(), e.to(dtype).requires_grad_()
        with hooked.hooks(fwd_hooks=[(n, tap) for n in names]):
            got = hooked(xs, ei, es)
        assert torch.equal(got, net(xs, ei, es))
    want, pre = _pre_relu(net, x.requires_grad_(), ei, e.requires_grad_())
    g = torch.randn(want.shape, dtype=torch.float64)
    g_want = torch.autograd.grad(want, [x, e, *pre.values()], g, allow_unused=True)
    calls.clear()
    got_g.clear()
    with hooked.hooks(fwd_hooks=[(n, tap) for n in names]):
        got = hooked(x, ei, e)
    g_got = [*torch.autograd.grad(got, [x, e], g, allow_unused=True), *(got_g.get(n) for n in names)]
    assert len(calls) == 4 and all("forward" not in vars(m) for m in net.modules())  # every MLP's relu; restored
    for a, b in zip(g_got, g_want):
        if b is None or a is None:  # no path from the output (an edgeless batch): zero on one side at most
            assert a is None or not a.any()
            continue
        scale = max(float(b.abs().max()) if b.numel() else 0.0, 1.0)
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12 * scale)


def _kept_by(where: str, net: nn.Module, hooked: nn.Module, kept: dict[str, torch.Tensor]) -> list:
    """Something outside the fast path that keeps ``convs.0.msg_mlp.0``'s output (the relu's input)."""
    lin, relu = net.convs[0].msg_mlp[0], net.convs[0].msg_mlp[1]
    keep = lambda t: kept.__setitem__("pre", t)  # noqa: E731
    if where == "hook":  # a hookgnn hook (gets a copy) that keeps what it returns
        return [hooked.hooks(fwd_hooks=[("convs.0.msg_mlp.0.hook_out", lambda act, hook: keep(act) or act)])]
    if where == "torch_post_on_linear":
        return [lin.register_forward_hook(lambda m, i, o: keep(o))]
    if where == "torch_pre_on_relu":
        return [relu.register_forward_pre_hook(lambda m, i: keep(i[0]))]
    if where == "torch_post_on_relu":  # sees the relu's input in its args
        return [relu.register_forward_hook(lambda m, i, o: keep(i[0]))]
    assert where == "global"
    return [torch_module.register_module_forward_hook(lambda m, i, o: keep(o) if m is lin else None)]


@pytest.mark.parametrize("where", ["cache", "hook", "torch_post_on_linear", "torch_pre_on_relu", "torch_post_on_relu",
                                   "global"])
def test_a_keeper_of_the_linear_output_sees_it_before_the_relu(where, monkeypatch):
    calls = _count_inplace(monkeypatch)
    torch.manual_seed(5)
    net = Minar(1, 8, 1, 16).double().requires_grad_(False)
    ei = torch.tensor([[0, 1, 2, 3, 1, 2], [1, 2, 3, 0, 1, 0]])
    x, e = torch.randn(4, 1, dtype=torch.float64, requires_grad=True), torch.rand(6, 1, dtype=torch.float64)
    want, pre = _pre_relu(net, x, ei, e)
    assert bool((pre["convs.0.msg_mlp.0"] < 0).any())  # entries the relu would overwrite
    hooked = from_pyg(net, example=(x, ei, e))
    kept: dict[str, torch.Tensor] = {}
    if where == "cache":
        got, cache = hooked.run_with_cache(x, ei, e, names_filter=["convs.0.msg_mlp.0.hook_out"])
        kept["pre"] = cache["convs.0.msg_mlp.0.hook_out"]
    else:
        handles = _kept_by(where, net, hooked, kept)
        try:
            if where == "hook":
                with handles[0]:
                    got = hooked(x, ei, e)
            else:
                got = hooked(x, ei, e)
        finally:
            for h in handles[1 if where == "hook" else 0:]:
                h.remove()
    assert torch.equal(got, want)
    assert torch.equal(kept["pre"], pre["convs.0.msg_mlp.0"])  # not overwritten by the relu
    assert len(calls) == (0 if where == "global" else 3)  # that relu out of place (a global hook: every relu)


class TwoReaders(pyg.MessagePassing):
    """The layer's output is read twice: by the relu (a direct child, no sequential) and by the sum."""

    def __init__(self) -> None:
        super().__init__(aggr="add")
        self.lin, self.act = nn.Linear(2, 16), nn.ReLU()
        self.mlp = nn.Sequential(nn.Linear(16, 16), nn.Tanh(), nn.ReLU())  # a relu after a non-linear: no pair

    def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
        return self.propagate(edge_index, x=x, edge_attr=edge_attr)

    def message(self, x_j, edge_attr):  # noqa: ANN001, ANN201
        h = self.lin(torch.cat([x_j, edge_attr], dim=-1))
        return self.mlp(self.act(h) + h)


def test_a_relu_that_is_not_its_layers_only_reader_runs_out_of_place(monkeypatch):
    calls = _count_inplace(monkeypatch)
    torch.manual_seed(6)
    net = TwoReaders().double().requires_grad_(False)
    ei = torch.tensor([[0, 1, 2, 2], [1, 2, 0, 2]])
    x, e = torch.randn(3, 1, dtype=torch.float64, requires_grad=True), torch.randn(4, 1, dtype=torch.float64)
    want = net(x, ei, e)
    (g_want,) = torch.autograd.grad(want.sum(), x)
    hooked = from_pyg(net, example=(x, ei, e))
    got = hooked(x, ei, e)
    (g_got,) = torch.autograd.grad(got.sum(), x)
    assert torch.equal(got, want) and not calls
    torch.testing.assert_close(g_got, g_want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relu_in_place_gives_torch_relu_bits_and_gradient_and_a_saved_input_raises(dtype):
    torch.manual_seed(7)
    x = torch.randn(50, 6, dtype=dtype)
    x[0, :3] = torch.tensor([0.0, -0.0, float("nan")], dtype=dtype)
    x[1, 0] = float("-inf")
    a = x.clone().requires_grad_()
    want = torch.relu(a * 1)
    y = a * 1
    r = rl.relu_(y)
    bits = torch.int32 if dtype == torch.float32 else torch.int64
    assert torch.equal(r.detach().view(bits), want.detach().view(bits))  # bit for bit: signed zeros, NaN
    assert r.data_ptr() == y.data_ptr() and r.grad_fn is not None
    g = torch.randn(50, 6, dtype=dtype)
    torch.testing.assert_close(torch.autograd.grad(r, a, g)[0], torch.autograd.grad(want, a, g)[0], rtol=0, atol=0)
    y = a * 1
    s = y * y  # a node that saved y: the relu's write must not go unnoticed
    r = rl.relu_(y)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        torch.autograd.grad((s + r).sum(), a)


def test_relu_in_place_only_where_granted_and_modules_restored_when_the_forward_raises(monkeypatch):
    calls = _count_inplace(monkeypatch)
    torch.manual_seed(8)
    net = Minar(1, 8, 1, 16).requires_grad_(False)
    ei = torch.tensor([[0, 1], [1, 2]])
    hooked = from_pyg(net, example=(torch.randn(3, 1), ei, torch.rand(2, 1)))
    with torch.no_grad():  # no gradient: torch's own relu
        hooked(torch.randn(3, 1), ei, torch.rand(2, 1))
    assert not calls
    with pytest.raises(RuntimeError):
        hooked(torch.randn(3, 5, requires_grad=True), ei, torch.rand(2, 1))  # wrong width: raises inside
    assert all("forward" not in vars(m) for m in net.modules())
    x, e = torch.randn(3, 1, requires_grad=True), torch.rand(2, 1)
    calls.clear()
    assert torch.equal(hooked(x, ei, e), net(x, ei, e)) and len(calls) == 4  # the next call: in place again


def _count_over(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = rl._over_relu_output
    monkeypatch.setattr(rl, "_over_relu_output", lambda *a: calls.append(1) or original(*a))
    return calls


@pytest.mark.skipif(compiled.load() is None, reason="the compiled kernel is not built here")
@pytest.mark.parametrize("retain", [False, True])
def test_single_backward_writes_the_fused_gradient_over_the_relu_output_and_equals_pyg_autograd(retain, monkeypatch):
    inplace, over = _count_inplace(monkeypatch), _count_over(monkeypatch)
    torch.manual_seed(9)
    net = Minar(1, 8, 1, 64).double().requires_grad_(False)
    ei = torch.tensor([[0, 1, 2, 3, 1, 2, 4, 4], [1, 2, 3, 0, 1, 0, 4, 3]])  # a parallel edge, a self-loop
    x, e = torch.randn(6, 1, dtype=torch.float64), torch.rand(8, 1, dtype=torch.float64)  # node 5: isolated
    want, pre = _pre_relu(net, x.requires_grad_(), ei, e.requires_grad_())
    g = torch.randn(want.shape, dtype=torch.float64)
    g_want = torch.autograd.grad(want, [x, *pre.values()], g)
    hooked = from_pyg(net, example=(x, ei, e))
    taps, got_g = GradientTaps(), {}
    tap = transient(lambda act, hook: taps.tap(act, lambda gr, n=hook.name: got_g.__setitem__(n, gr)))
    names = [f"{p}.hook_out" for p in FIRST]
    with hooked.hooks(fwd_hooks=[(n, tap) for n in names]):
        got = hooked(x, ei, e)
    assert torch.equal(got, want) and len(inplace) == 4
    if retain:  # autograd's own backward, graph kept: nothing overwritten, a second backward gives the same
        got = hooked(x, ei, e)  # no taps (they are single-use)
        firsts = torch.autograd.grad(got, [x], g, retain_graph=True)
        seconds = torch.autograd.grad(got, [x], g)
        assert not over and torch.equal(firsts[0], seconds[0])
        torch.testing.assert_close(firsts[0], g_want[0], rtol=1e-10, atol=1e-12)
        return
    taps.backward((got * g).sum())  # the taps' single backward: the four fused layers write over the relus
    assert len(over) == (4 if resolve_backend(g) == "compiled" else 0)  # HOOKGNN_SCATTER_BACKEND=torch: torch's
    for n, b in zip(names, g_want[1:]):
        scale = max(float(b.abs().max()), 1.0)
        torch.testing.assert_close(got_g[n], b, rtol=1e-10, atol=1e-12 * scale)


@pytest.mark.skipif(compiled.load() is None, reason="the compiled kernel is not built here")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [0, 1, 8])
def test_kernel_over_the_relu_output_equals_the_fresh_one_bit_for_bit(dtype, k):
    gen = torch.Generator().manual_seed(k)
    grad, weight = torch.randn(70, k, generator=gen, dtype=dtype), torch.randn(k, 9, generator=gen, dtype=dtype)
    result = torch.randn(70, 9, generator=gen, dtype=dtype).relu()
    result[3, 4] = float("nan")
    want = compiled.load().relu_linear_backward(grad, weight, result, 1)
    over = result.clone()
    got = compiled.load().relu_linear_backward_(grad, weight, over, 1)
    assert got.data_ptr() == over.data_ptr()
    torch.testing.assert_close(got, want, rtol=0, atol=0, equal_nan=True)
    with pytest.raises(RuntimeError, match="result must be"):
        compiled.load().relu_linear_backward_(grad, weight, over[:, :3], 1)
