"""Frozen ``Linear`` fed by an ``nn.ReLU`` (``hookgnn.interop.relu_linear``): the relu's backward fused into the
layer's input gradient. Checked against PyG itself (the unwrapped model's outputs, bit for bit, and its
``torch.autograd.grad`` in float64) on random batches with isolated nodes, edgeless graphs, self-loops, parallel
edges and ties, on the compiled kernel and on plain torch; against plain torch by hand where the relu's output has
other consumers, a hook, or a double backward; and the modules are left as they were, also after a raise."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_zoo import MinarWidths as Minar
from model_zoo import minar_widths_case
from strategies import batches
from torch import nn

import hookgnn.interop.relu_linear as rl
from hookgnn import from_pyg
from hookgnn.cache.grad_taps import frozen_parameters
from hookgnn.ops import compiled
from hookgnn.ops.backend import use_backend
from hookgnn.points import read_only

pytest.importorskip("torch_geometric.nn")

pytestmark = pytest.mark.usefixtures("one_thread")


def _count_fused(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = rl.relu_linear
    monkeypatch.setattr(rl, "relu_linear", lambda *a: calls.append(1) or original(*a))
    monkeypatch.setattr(rl, "LARGE", 0)  # tiny graphs: make the fused path take them
    return calls


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(batch=batches(min_graphs=1, max_graphs=3, min_nodes=0, max_nodes=6, max_edges=10, node_features=2,
                     edge_features=1, dtype=torch.float64),
       widths=st.sampled_from([(1, 8, 1, 64), (2, 3, 2, 16), (1, 8, 1, 5)]), seed=st.integers(0, 3),
       backend=st.sampled_from(["auto", "torch"]), integral=st.booleans())
def test_wrapped_minar_values_bit_for_bit_and_gradients_equal_pyg_autograd(batch, widths, seed, backend, integral,
                                                                           monkeypatch):
    calls = _count_fused(monkeypatch)
    net, x, ei, e = minar_widths_case(batch, widths, seed, integral)
    hooked = from_pyg(net, example=(x, ei, e))
    for dtype in (torch.float32, torch.float64):  # values: bit for bit in both
        net.to(dtype)
        xs, es = x.to(dtype).requires_grad_(), e.to(dtype).requires_grad_()
        with use_backend(backend):
            got = hooked(xs, ei, es)
        assert torch.equal(got, net(xs, ei, es))
    want = net(x.requires_grad_(), ei, e.requires_grad_())
    g = torch.randn(want.shape, dtype=torch.float64)
    g_want = torch.autograd.grad(want, [x, e], g, allow_unused=True)
    calls.clear()
    with use_backend(backend):
        got = hooked(x, ei, e)
        g_got = torch.autograd.grad(got, [x, e], g, allow_unused=True)
    assert len(calls) == 4  # each round's msg_mlp.2 and upd_mlp.2 took the fused path
    for a, b in zip(g_got, g_want):
        assert (a is None) == (b is None)
        if a is not None:
            scale = max(float(b.abs().max()) if b.numel() else 0.0, 1.0)
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12 * scale)
    assert all("forward" not in vars(m) for m in net.modules())  # nothing left on the original model


@pytest.mark.parametrize("backend", ["auto", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_relu_output_with_other_consumers_gets_every_consumers_gradient(backend, dtype):
    torch.manual_seed(0)
    lin = nn.Linear(6, 3).to(dtype).requires_grad_(False)
    x = torch.randn(40, 6, dtype=dtype)
    x[::3, 1] = 0.0  # exact zeros: relu'(0) = 0 in torch's threshold_backward
    x[5, 2] = float("nan")  # a NaN passes its gradient, as in torch
    g_z, g_r = torch.randn(40, 3, dtype=dtype), torch.randn(40, 6, dtype=dtype)
    a = x.clone().requires_grad_()
    r = torch.relu(a)
    (want_one,) = torch.autograd.grad(lin(r), a, g_z, retain_graph=True)
    (want_two,) = torch.autograd.grad((lin(r) * g_z).sum() + (r * g_r).sum(), a)
    b = x.clone().requires_grad_()
    with use_backend(backend):
        r = rl.relu(b)
        torch.testing.assert_close(r, torch.relu(x), rtol=0, atol=0, equal_nan=True)  # bit for bit, NaN included
        assert rl.takes(lin, r)
        z = rl.relu_linear(lin, r)
        torch.testing.assert_close(z, lin(torch.relu(x)), rtol=0, atol=0, equal_nan=True)
        (got_one,) = torch.autograd.grad(z, b, g_z, retain_graph=True)  # the relu node passes the masked gradient on
        (got_two,) = torch.autograd.grad((z * g_z).sum() + (r * g_r).sum(), b)  # a sum: the relu node masks it
    tol = dict(rtol=1e-5 if dtype == torch.float32 else 1e-12, atol=1e-6 if dtype == torch.float32 else 1e-13)
    torch.testing.assert_close(got_one, want_one, equal_nan=True, **tol)
    torch.testing.assert_close(got_two, want_two, equal_nan=True, **tol)
    assert float(got_one[5, 2]) != 0.0 and float(got_one[0, 1]) == 0.0  # NaN passes its gradient, 0 does not


def test_double_backward_through_the_fused_layer_equals_torch():
    torch.manual_seed(1)
    lin = nn.Linear(5, 2).double().requires_grad_(False)
    x = torch.randn(30, 5, dtype=torch.float64)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    (ga,) = torch.autograd.grad(lin(torch.relu(a)).pow(2).sum(), a, create_graph=True)
    (gb,) = torch.autograd.grad(rl.relu_linear(lin, rl.relu(b)).pow(2).sum(), b, create_graph=True)
    torch.testing.assert_close(gb, ga, rtol=1e-12, atol=1e-13)
    torch.testing.assert_close(torch.autograd.grad(gb.sum(), b)[0], torch.autograd.grad(ga.sum(), a)[0],
                               rtol=1e-12, atol=1e-13)


def test_gradient_at_a_hooked_relu_output_is_the_unmasked_one(monkeypatch):
    calls = _count_fused(monkeypatch)
    torch.manual_seed(2)
    net = Minar(1, 8, 1, 16).double().requires_grad_(False)
    ei = torch.tensor([[0, 1, 2, 3, 1], [1, 2, 3, 0, 1]])
    x, e = torch.randn(4, 1, dtype=torch.float64), torch.rand(5, 1, dtype=torch.float64)
    seen: dict[str, torch.Tensor] = {}
    handle = net.convs[0].msg_mlp[1].register_forward_hook(lambda m, i, o: seen.__setitem__("r", o))
    want = net(x.requires_grad_(), ei, e)
    handle.remove()
    (g_want,) = torch.autograd.grad(want.sum(), seen["r"])
    hooked = from_pyg(net, example=(x, ei, e))
    kept = read_only(lambda act, hook: seen.__setitem__("r", act))  # a read-only hook keeps the relu's output
    with hooked.hooks(fwd_hooks=[("convs.0.msg_mlp.1.hook_out", kept)]):
        got = hooked(x, ei, e)
    (g_got,) = torch.autograd.grad(got.sum(), seen["r"])
    assert len(calls) == 3  # the hooked relu output does not take the fused path; the other three do
    torch.testing.assert_close(g_got, g_want, rtol=1e-12, atol=1e-13)


def test_fused_path_only_for_frozen_large_relu_outputs_and_modules_restored_when_the_forward_raises():
    lin = nn.Linear(64, 8).requires_grad_(False)
    big = torch.randn(rl.LARGE // 64, 64, requires_grad=True)
    assert rl.takes_relu(big) and not rl.takes_relu(big[:10]) and not rl.takes_relu(big.detach())
    r = rl.relu(big)
    assert rl.takes(lin, r) and not rl.takes(nn.Linear(64, 8), r)  # parameter gradients asked for: the layer's own
    assert not rl.takes(nn.Linear(64, rl.MAX_OUT + 1).requires_grad_(False), r)  # wide product: BLAS's
    assert not rl.takes(lin, torch.relu(big)) and not rl.takes(lin, r * 1)  # not the relu's own output
    with torch.no_grad():
        assert not rl.takes(lin, r)
    torch.manual_seed(3)
    net = Minar(1, 8, 1, 64)
    ei = torch.tensor([[0, 1], [1, 2]])
    hooked = from_pyg(net, example=(torch.randn(3, 1), ei, torch.rand(2, 1)))
    with frozen_parameters(net), pytest.raises(RuntimeError):
        hooked(torch.randn(3, 5, requires_grad=True), ei, torch.rand(2, 1))  # wrong width: raises inside
    assert all("forward" not in vars(m) for m in net.modules())


@pytest.mark.skipif(compiled.load() is None, reason="the compiled kernel is not built here")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [0, 1, 8])
def test_kernel_equals_the_masked_product_by_hand(dtype, k):
    gen = torch.Generator().manual_seed(k)
    grad, weight = torch.randn(50, k, generator=gen, dtype=dtype), torch.randn(k, 7, generator=gen, dtype=dtype)
    result = torch.randn(50, 7, generator=gen, dtype=dtype).relu()
    result[3, 4] = float("nan")
    got = compiled.load().relu_linear_backward(grad, weight, result, 1)
    want = grad.double() @ weight.double()
    want = torch.where(result.double() <= 0, torch.zeros_like(want), want)  # NaN <= 0 is false: passes
    scale = max(float(want.abs().max()), 1.0)
    torch.testing.assert_close(got.double(), want, rtol=1e-5 if dtype == torch.float32 else 1e-12,
                               atol=(1e-6 if dtype == torch.float32 else 1e-13) * scale)
    with pytest.raises(RuntimeError, match="result must be"):
        compiled.load().relu_linear_backward(grad, weight, result[:, :3], 1)


@pytest.mark.parametrize("where", ["relu_output", "layer_input"])
def test_a_torch_hook_outside_hookgnn_keeps_the_unmasked_gradient(where, monkeypatch):
    calls = _count_fused(monkeypatch)
    torch.manual_seed(4)
    net = Minar(1, 8, 1, 16).double().requires_grad_(False)
    ei = torch.tensor([[0, 1, 2, 3, 1, 2], [1, 2, 3, 0, 1, 0]])
    x, e = torch.randn(4, 1, dtype=torch.float64), torch.rand(6, 1, dtype=torch.float64)
    seen: dict[str, torch.Tensor] = {}
    if where == "relu_output":  # a plain torch forward hook on the inner relu keeps its output
        handle = net.convs[0].msg_mlp[1].register_forward_hook(lambda m, i, o: seen.__setitem__("r", o))
    else:  # a plain torch pre-hook on the layer after it keeps its input
        handle = net.convs[0].msg_mlp[2].register_forward_pre_hook(lambda m, i: seen.__setitem__("r", i[0]))
    try:
        want = net(x.requires_grad_(), ei, e)
        (g_want,) = torch.autograd.grad(want.sum(), seen["r"])
        hooked = from_pyg(net, example=(x, ei, e))
        got = hooked(x, ei, e)
        (g_got,) = torch.autograd.grad(got.sum(), seen["r"])
    finally:
        handle.remove()
    assert bool((seen["r"] == 0).any())  # inactive relu entries, where a masked gradient would differ
    torch.testing.assert_close(g_got, g_want, rtol=1e-12, atol=1e-13)
    assert len(calls) == 3  # that layer keeps autograd's own backward; the other three fuse
