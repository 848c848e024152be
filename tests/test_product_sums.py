"""``hookgnn.ops.products.product_sums``: the row and the feature sums of ``a * b`` in one pass. Checked against a
float64 plain-torch reference ``(a * b).sum(1)`` / ``.sum(0)`` on empty tensors, one row, odd widths, extra feature
axes, non-contiguous inputs, float32 and float64, on the compiled kernel and on plain torch; the kernel's result is
the same bit for bit on one and two threads; and ``attribute(keep="rows")`` made with it equals ``keep="all"``'s rows."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hookgnn import Graph, HookedGNN
from hookgnn.attribution import attribute
from hookgnn.metrics import OutputSum
from hookgnn.ops import compiled, get_backend, use_backend
from hookgnn.ops import products
from hookgnn.ops.products import product_sums
from hookgnn.spec import FeatureSpec

BACKENDS = ["auto", "torch"]


def _reference(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    p = a.double() * b.double()
    return p.reshape(p.shape[0], math.prod(p.shape[1:])).sum(1), p.sum(0)


def _close(got: torch.Tensor, want: torch.Tensor, a: torch.Tensor, b: torch.Tensor, terms: int) -> None:
    """``got`` equals the float64 ``want`` up to the rounding of ``terms`` products at ``a``'s precision, scaled by
    the magnitude of the products (|a| |b|), which bounds any summation order's error."""
    eps = torch.finfo(a.dtype).eps
    scale = float((a.double().abs() * b.double().abs()).max()) if a.numel() else 0.0
    assert got.shape == want.shape and got.dtype == a.dtype
    torch.testing.assert_close(got.double(), want, rtol=4 * eps, atol=4 * eps * max(terms, 1) * max(scale, 1e-30))


@settings(max_examples=60, deadline=None)
@given(rows=st.integers(0, 40), features=st.sampled_from([(1,), (3,), (7,), (8,), (9,), (17,), (64,), (2, 3), (0,)]),
       dtype=st.sampled_from([torch.float32, torch.float64]), layout=st.sampled_from(["contiguous", "transposed",
                                                                                       "strided", "expanded"]),
       backend=st.sampled_from(BACKENDS), seed=st.integers(0, 2**16))
def test_product_sums_match_float64_reference(rows, features, dtype, layout, backend, seed):
    gen = torch.Generator().manual_seed(seed)
    shape = (rows, *features)
    a = (torch.randn(shape, generator=gen, dtype=torch.float64) * 10).to(dtype)
    b = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
    if layout == "transposed" and len(features) == 1:  # a column-major view of the same values
        a = a.t().contiguous().t()
    elif layout == "strided":  # every other column of a wider tensor
        wide = torch.randn((rows, 2 * math.prod(features)), generator=gen, dtype=torch.float64).to(dtype)
        b = wide[:, ::2].reshape(shape)
    elif layout == "expanded" and rows > 0:  # one row repeated: zero row stride
        b = b[:1].expand(shape)
    want_row, want_feature = _reference(a, b)
    a_before = a.clone()
    with use_backend(backend):
        by_row, by_feature = product_sums(a, b)
    assert torch.equal(a, a_before)  # not overwritten unless asked
    _close(by_row, want_row, a, b, math.prod(features))
    _close(by_feature, want_feature, a, b, rows)


@pytest.mark.parametrize("backend", BACKENDS)
def test_product_sums_overwrite_lets_the_torch_path_reuse_a(backend):
    torch.manual_seed(0)
    a, b = torch.randn(5, 3), torch.randn(5, 3)
    want_row, want_feature = _reference(a, b)
    with use_backend(backend):
        by_row, by_feature = product_sums(a.clone(), b, overwrite=True)
    _close(by_row, want_row, a, b, 3)
    _close(by_feature, want_feature, a, b, 5)


def test_kernel_result_is_the_same_bits_on_one_and_two_threads():
    if get_backend() == "torch" or not compiled.is_available():
        pytest.skip("the compiled kernel is off (HOOKGNN_SCATTER_BACKEND=torch) or unavailable here")
    torch.manual_seed(1)
    a, b = torch.randn(3001, 64), torch.randn(3001, 64)  # past two grains: two threads really run
    assert products._kernel_applies(a, b)  # the compiled path, not plain torch twice
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = product_sums(a, b)
        torch.set_num_threads(2)
        two = product_sums(a, b)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
    _close(one[1], _reference(a, b)[1], a, b, 3001)


def test_product_sums_with_grad_stays_differentiable():
    a = torch.randn(4, 3, requires_grad=True)
    b = torch.randn(4, 3)
    by_row, by_feature = product_sums(a, b)
    (by_row.sum() + by_feature.sum()).backward()
    torch.testing.assert_close(a.grad, 2 * b)


def test_product_sums_mixed_dtypes_promote_like_a_product():
    a, b = torch.ones(2, 2, dtype=torch.float32), torch.ones(2, 2, dtype=torch.float64)
    by_row, by_feature = product_sums(a, b)
    assert by_row.dtype == by_feature.dtype == torch.float64 and by_row.tolist() == [2.0, 2.0]


@pytest.mark.parametrize(("a", "b", "match"), [
    (torch.ones(2, 3), torch.ones(3, 2), r"same shape, got \(2, 3\) and \(3, 2\)"),
    (torch.ones(()), torch.ones(()), "first \\(row\\) axis"),
])
def test_product_sums_rejects_bad_shapes(a, b, match):
    with pytest.raises(ValueError, match=match):
        product_sums(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("ig_steps", [0, 2])
def test_attribute_rows_through_product_sums_equal_keep_all(backend, ig_steps):
    torch.manual_seed(3)
    model = HookedGNN("mpnn", 9, node_in=1, edge_in=1, spec={"d": FeatureSpec("output", "node", "scalar")},
                      max_steps=3)
    g = Graph(x=torch.rand(6, 1), edge_index=torch.tensor([[0, 1, 2, 3, 3, 5], [1, 2, 0, 3, 4, 4]]),
              edge_attr=torch.rand(6, 1))
    src = g.replace(x=torch.rand(6, 1))
    with use_backend(backend):
        rows = attribute(model, g, src, OutputSum("d"), keep="rows", ig_steps=ig_steps)
    full = attribute(model, g, src, OutputSum("d"), keep="all", ig_steps=ig_steps)
    assert set(rows.by_row) == set(full.delta)
    for name, delta in full.delta.items():
        product = delta.double() * full.grad[name].double()
        scale = float(product.abs().max()) + 1e-12
        torch.testing.assert_close(rows.by_row[name].double(), product.reshape(product.shape[0], -1).sum(1),
                                   rtol=1e-5, atol=1e-5 * scale * product[0].numel())
        torch.testing.assert_close(rows.by_feature[name].double(), product.sum(0), rtol=1e-5,
                                   atol=1e-5 * scale * product.shape[0])
