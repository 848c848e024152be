"""The compiled kernel on several threads: OpenMP build, torch.set_num_threads honoured,
results identical for any number of threads (values, winners, gradients, plans)."""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import pytest
import torch
from hypothesis import given
from torch.autograd import gradcheck

from hookgnn.ops import ScatterPlan, compiled, scatter_max, scatter_min
from tests.scatter_reference import brute_extreme, brute_gradient, graphs


@pytest.fixture(scope="module", autouse=True)
def built_kernel():
    """Build (or load the cached build of) the compiled kernel once for this module."""
    if compiled.load() is None:
        pytest.skip("the compiled kernel cannot be built here")


@contextmanager
def threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run(src, index, dim_size, largest, n):
    with threads(n):
        leaf = src.clone().requires_grad_()
        out, arg = (scatter_max if largest else scatter_min)(leaf, index, dim_size, backend="compiled")
        out.backward(torch.arange(out.numel(), dtype=src.dtype).reshape(out.shape) - 3)
        plan = ScatterPlan.build(index, dim_size)
    return out.detach(), arg, leaf.grad, plan.rowptr, plan.perm


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The tensor's raw bits, so that -0.0 != 0.0 and NaN payloads count."""
    return t.view({8: torch.int64, 4: torch.int32, 2: torch.int16}[t.element_size()]) if t.is_floating_point() else t


@given(graphs())
def test_one_and_two_threads_give_identical_values_winners_gradients_and_plans(case):
    src, index, dim_size = case
    for largest in (True, False):
        one, two = _run(src, index, dim_size, largest, 1), _run(src, index, dim_size, largest, 2)
        assert all(torch.equal(_bits(a), _bits(b)) for a, b in zip(one, two))
        ref_out, ref_arg = brute_extreme(src, index, dim_size, largest)
        assert torch.equal(one[0], ref_out) and torch.equal(one[1], ref_arg)


@pytest.mark.parametrize(("num_edges", "dim_size", "feat"), [(40_000, 2_000, (8,)), (60_000, 50, (3, 2)), (5_000, 9_000, ())])
def test_large_graphs_split_between_threads_give_identical_results(num_edges, dim_size, feat):
    """Large enough that the forward and backward really split between threads."""
    torch.manual_seed(0)
    src = torch.randint(-4, 5, (num_edges, *feat)).float()  # many ties
    src[::97] = float("nan")
    src[1::89] = -0.0
    index = torch.randint(0, dim_size, (num_edges,), dtype=torch.int32)
    index[: num_edges // 3] = index[: num_edges // 3].sort().values  # runs of one node
    for largest in (True, False):
        one, two = _run(src, index, dim_size, largest, 1), _run(src, index, dim_size, largest, 2)
        assert all(torch.equal(_bits(a), _bits(b)) for a, b in zip(one, two))
        with torch.no_grad():
            ref = (scatter_max if largest else scatter_min)(src, index, dim_size, backend="torch")
        assert torch.equal(one[0].nan_to_num(7.0), ref[0].nan_to_num(7.0)) and torch.equal(one[1], ref[1])


def test_plan_is_the_stable_sort_of_the_index():
    torch.manual_seed(1)
    index = torch.randint(0, 700, (50_000,))
    for n in (1, 2):
        with threads(n):
            plan = ScatterPlan.build(index, 800)
        assert torch.equal(plan.perm, torch.sort(index, stable=True).indices)
        counts = torch.bincount(index, minlength=800)
        assert torch.equal(plan.rowptr, torch.cat([torch.zeros(1, dtype=torch.long), counts.cumsum(0)]))


def test_kernel_runs_on_torch_get_num_threads():
    if not compiled.has_openmp():
        pytest.skip("kernel built without OpenMP")
    kernel = compiled.load()
    src, index = torch.randn(20_000, 16, requires_grad=True), torch.randint(0, 1000, (20_000,))
    for n in (1, 2):
        with threads(n):
            out, _ = scatter_max(src, index, 1000, backend="compiled")
            assert kernel.last_threads() == n
            out.sum().backward()
            assert kernel.last_threads() == n


def test_gradient_matches_finite_differences_on_two_threads():
    torch.manual_seed(2)
    src = torch.randn(3000, 12, dtype=torch.float64, requires_grad=True)  # ties have measure 0
    index = torch.randint(0, 200, (3000,))
    with threads(2):
        for fn in (scatter_max, scatter_min):
            assert gradcheck(lambda s: fn(s, index, 220)[0], (src,), fast_mode=True)
            out, arg = fn(src, index, 220)
            grad_out = torch.randn_like(out)
            (grad,) = torch.autograd.grad(out, src, grad_out)
            assert torch.equal(grad, brute_gradient(grad_out, brute_extreme(src.detach(), index, 220, fn is scatter_max)[1], 3000, (12,)))


def test_without_openmp_the_build_warns_once_and_gives_identical_results(monkeypatch):
    real = compiled.load()
    src, index = torch.randint(-2, 3, (50, 3)).float(), torch.randint(0, 9, (50,))
    expected = _run(src, index, 10, True, 2)

    def build(openmp, native):
        if openmp:
            raise OSError("-fopenmp: unsupported option")
        return real  # stands in for the single-threaded build

    monkeypatch.setattr(compiled, "_build", build)
    monkeypatch.setattr(compiled, "_already_built", lambda openmp, native: True)
    compiled.reset()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            got = _run(src, index, 10, True, 2)
            _run(src, index, 10, False, 2)
        messages = [str(w.message) for w in caught if "OpenMP" in str(w.message)]
        assert len(messages) == 1 and "one thread" in messages[0] and "unsupported option" in messages[0]
        assert all(torch.equal(a, b) for a, b in zip(got, expected))
    finally:
        monkeypatch.undo()
        compiled.reset()
        compiled.load()


def test_openmp_probe_reports_a_missing_compiler(monkeypatch):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    assert compiled.openmp_compiles() is False


def test_a_failed_native_build_falls_back_to_the_portable_one_silently(monkeypatch):
    real, tried = compiled.load(), []

    def build(openmp, native):
        tried.append((openmp, native))
        if native:
            raise OSError("-march=native: unknown target CPU")
        return real

    monkeypatch.setattr(compiled, "_build", build)
    monkeypatch.setattr(compiled, "native_flags", lambda: ("-march=native",))
    monkeypatch.setattr(compiled, "_already_built", lambda openmp, native: True)
    compiled.reset()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no warning: the portable build is as correct
            assert compiled.load() is real
        assert tried == [(True, True), (True, False)]
    finally:
        monkeypatch.undo()
        compiled.reset()
        compiled.load()
