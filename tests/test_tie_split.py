"""The min / max aggregation's backward on the compiled kernel (``tie_split_backward``, ``hookgnn.interop.aggregation``):
bit for bit PyG's own gradient (torch's ``scatter_reduce`` backward), ties, zero extremes, isolated nodes, self-loops,
parallel edges, infinities and NaN included, and the kernel checked to have run."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hookgnn.interop import aggregation
from hookgnn.interop.aggregation import fast_extreme
from hookgnn.ops import compiled, scatter_plans
from hookgnn.ops.backend import use_backend

pyg_utils = pytest.importorskip("torch_geometric.utils")

pytestmark = [pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(compiled.load() is None, reason="the compiled kernel is not built here")]


def _counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    kernel = compiled.load()
    original = kernel.tie_split_backward
    calls: list[int] = []
    monkeypatch.setattr(kernel, "tie_split_backward", lambda *a: calls.append(1) or original(*a))
    return calls


@settings(max_examples=25, deadline=None)
@given(data=st.data(), largest=st.booleans(), dtype=st.sampled_from([torch.float64, torch.float32]),
       special=st.booleans())
def test_kernel_backward_equals_pyg_scatter_gradient_bit_for_bit(data, largest, dtype, special):
    nodes = data.draw(st.integers(1, 7))
    edges = data.draw(st.integers(0, 20))
    index = torch.tensor(data.draw(st.lists(st.integers(0, nodes - 1), min_size=edges, max_size=edges)), dtype=torch.long)
    values = data.draw(st.lists(st.integers(-2, 2), min_size=edges * 3, max_size=edges * 3))  # ties, zeros
    src = torch.tensor(values, dtype=dtype).reshape(edges, 3)
    if special and edges:
        src[0, 0] = float("inf")
        src[-1, 1] = float("nan")
    grad = torch.randn(nodes, 3, dtype=dtype)
    if special:
        grad[0, 2] = float("inf")  # 0 * inf on the losing edges: NaN, as torch multiplies
    a = src.clone().requires_grad_()
    want = pyg_utils.scatter(a, index, 0, nodes, reduce="max" if largest else "min")
    (g_want,) = torch.autograd.grad(want, a, grad)
    b = src.clone().requires_grad_()
    kernel = compiled.load()
    original = kernel.tie_split_backward
    calls: list[int] = []
    kernel.tie_split_backward = lambda *args: calls.append(1) or original(*args)
    try:
        with use_backend("compiled"), scatter_plans():
            got = fast_extreme(b, index, nodes, largest)
        (g_got,) = torch.autograd.grad(got, b, grad)
    finally:
        kernel.tie_split_backward = original
    assert calls == [1]
    assert torch.equal(got.nan_to_num(7.0), want.nan_to_num(7.0))
    assert torch.equal(g_got.nan_to_num(7.0), g_want.nan_to_num(7.0))
    assert torch.equal(g_got.isnan(), g_want.isnan()) and torch.equal(g_got.signbit(), g_want.signbit())


def test_torch_backend_and_double_backward_use_torch_formula(monkeypatch):
    calls = _counted(monkeypatch)
    index = torch.tensor([0, 0, 1, 2, 2])
    src = torch.tensor([[1.0], [1.0], [0.0], [-1.0], [3.0]], dtype=torch.float64)
    grad = torch.tensor([[2.0], [5.0], [7.0]], dtype=torch.float64)
    a = src.clone().requires_grad_()
    (want,) = torch.autograd.grad(pyg_utils.scatter(a, index, 0, 3, reduce="min"), a, grad)
    b = src.clone().requires_grad_()
    with use_backend("torch"), scatter_plans():
        (got,) = torch.autograd.grad(fast_extreme(b, index, 3, False), b, grad)
    assert torch.equal(got, want) and calls == []
    with use_backend("compiled"), scatter_plans():
        out = fast_extreme(b, index, 3, False)
    (got,) = torch.autograd.grad(out, b, grad, create_graph=True)  # a differentiable backward: torch's formula
    assert torch.equal(got, want) and calls == []
    assert aggregation.takes(b, index, None, 3, -2) is False  # tiny: PyG's own in a wrapped model
