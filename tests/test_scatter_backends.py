"""Scatter max/min backends: choosing them, and every one giving identical results."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import given

from hookgnn.ops import (
    available_backends,
    backend,
    compiled,
    get_backend,
    scatter,
    scatter_max,
    scatter_min,
    set_backend,
    use_backend,
)
from tests.scatter_reference import brute_extreme, graphs

# Backends that run on CPU tensors (triton is checked in test_scatter_triton.py).
CONCRETE = [b for b in available_backends() if b not in ("auto", "triton")]


@pytest.fixture(scope="module", autouse=True)
def built_kernel():
    """Build (or load the cached build of) the compiled kernel once for this module."""
    compiled.load()


@pytest.fixture(autouse=True)
def default_backend(monkeypatch):
    monkeypatch.delenv(backend.ENV_VAR, raising=False)
    set_backend(None)
    yield
    set_backend(None)


def _run(name, src, index, dim_size, largest):
    leaf = src.clone().requires_grad_()
    out, arg = (scatter_max if largest else scatter_min)(leaf, index, dim_size, backend=name)
    out.backward(torch.arange(out.numel(), dtype=src.dtype).reshape(out.shape) + 1)
    return out.detach(), arg, leaf.grad


# --- every backend gives the same values, winners and gradients -----------------------


@given(graphs())
def test_every_backend_gives_identical_values_winners_and_gradients(case):
    src, index, dim_size = case
    for largest in (True, False):
        ref_out, ref_arg = brute_extreme(src, index, dim_size, largest)
        for name in CONCRETE:
            out, arg, grad = _run(name, src, index, dim_size, largest)
            assert torch.equal(out, ref_out) and torch.equal(arg, ref_arg), name
            assert torch.equal(grad, _run("torch", src, index, dim_size, largest)[2]), name


@pytest.mark.parametrize("name", CONCRETE)
def test_every_backend_handles_non_finite_values_identically(name):
    inf, nan, big = float("inf"), float("nan"), torch.finfo(torch.float32).max
    src = torch.tensor([-inf, -inf, 2.0, nan, nan, -big, -big, inf, 1.0])
    index = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3])
    for largest in (True, False):
        out, arg = (scatter_max if largest else scatter_min)(src, index, 5, backend=name)
        ref_out, ref_arg = brute_extreme(src, index, 5, largest)
        assert torch.equal(out.nan_to_num(7.0), ref_out.nan_to_num(7.0)) and torch.equal(arg, ref_arg)


@pytest.mark.parametrize("name", CONCRETE)
def test_every_backend_agrees_on_a_larger_random_graph(name):
    torch.manual_seed(4)
    src = torch.randint(-3, 4, (3000, 2, 8)).float()  # many ties
    index = torch.randint(0, 500, (3000,), dtype=torch.int32)
    for largest in (True, False):
        ref = _run("torch", src, index, 600, largest)
        got = _run(name, src, index, 600, largest)
        assert all(torch.equal(a, b) for a, b in zip(got, ref))


def test_torch_scatter_values_match_ours_and_its_arg_maps_empty_to_minus_one():
    torch_scatter = pytest.importorskip("torch_scatter")
    torch.manual_seed(5)
    src, index = torch.randint(-3, 4, (400, 6)).float(), torch.randint(0, 120, (400,))
    peer_out, peer_arg = torch_scatter.scatter_max(src, index, dim=0, dim_size=130)
    out, arg = scatter_max(src, index, 130)
    # torch_scatter also breaks ties by the lowest edge index; empty nodes get arg = E.
    assert torch.equal(out, peer_out)
    assert torch.equal(arg, torch.where(peer_arg == 400, -1, peer_arg))


# --- choosing a backend ---------------------------------------------------------------


def test_auto_picks_the_compiled_kernel_on_cpu_and_torch_elsewhere():
    assert backend.resolve_backend(torch.zeros(1)) == "compiled"
    assert backend.resolve_backend(torch.zeros(1, device="meta")) == "torch"
    assert backend.resolve_backend(torch.zeros(1, dtype=torch.long)) == "torch"


def test_per_call_beats_context_beats_global_beats_env(monkeypatch):
    monkeypatch.setenv(backend.ENV_VAR, "torch")
    assert get_backend() == "torch"
    set_backend("compiled")
    assert get_backend() == "compiled"
    with use_backend("torch"):
        assert get_backend() == "torch"
        assert backend.resolve_backend(torch.zeros(1), "compiled") == "compiled"
    assert get_backend() == "compiled"


def test_context_restores_the_backend_when_the_block_raises():
    with pytest.raises(RuntimeError), use_backend("torch"):
        raise RuntimeError
    assert get_backend() == "auto"


def test_unknown_backend_raises_everywhere(monkeypatch):
    with pytest.raises(ValueError, match="unknown scatter backend"):
        set_backend("cuda_magic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown scatter backend"), use_backend("nope"):  # type: ignore[arg-type]
        pass
    with pytest.raises((ValueError, TypeError)):
        scatter(torch.zeros(2), torch.tensor([0, 0]), 1, "max", backend="nope")  # type: ignore[arg-type]
    monkeypatch.setenv(backend.ENV_VAR, "nope")
    with pytest.raises(ValueError, match="unknown scatter backend"):
        scatter_max(torch.zeros(2), torch.tensor([0, 0]), 1)


def test_torch_scatter_backend_needs_the_package(monkeypatch):
    monkeypatch.setattr(backend, "torch_scatter_installed", lambda: False)
    assert "torch_scatter" not in available_backends()
    with pytest.raises(ValueError, match="needs the torch_scatter package"):
        set_backend("torch_scatter")


def test_failed_build_warns_once_and_falls_back_to_identical_results(monkeypatch):
    def broken_build(openmp, native):
        raise OSError("no compiler")

    src, index = torch.randint(-2, 3, (50, 3)).float(), torch.randint(0, 9, (50,))
    expected = _run("torch", src, index, 10, True)
    monkeypatch.setattr(compiled, "_build", broken_build)
    compiled.reset()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            first = _run("compiled", src, index, 10, True)
            second = _run(None, src, index, 10, True)
        assert backend.resolve_backend(src, "compiled") == "torch"
        messages = [w for w in caught if "compiled scatter" in str(w.message)]
        assert len(messages) == 1 and "no compiler" in str(messages[0].message)
        for got in (first, second):
            assert all(torch.equal(a, b) for a, b in zip(got, expected))
    finally:
        monkeypatch.undo()
        compiled.reset()
        compiled.load()


@pytest.mark.parametrize("name", CONCRETE)
@pytest.mark.parametrize("reduce", ["max", "min"])
def test_every_backend_gradient_matches_finite_differences(name, reduce):
    index = torch.tensor([0, 0, 0, 0, 1, 1, 3, 3])
    src = torch.tensor([5.0, 2.0, 2.0, 1.0, 0.0, -1.0, -2.0, 4.0], dtype=torch.float64)
    src = torch.stack([src, -src + 0.5], 1).requires_grad_()
    assert torch.autograd.gradcheck(lambda s: scatter(s, index, 4, reduce, backend=name), (src,))
    assert torch.autograd.gradgradcheck(lambda s: scatter(s, index, 4, reduce, backend=name) ** 2, (src,))
