"""Precomputed plans (explicit and cached in scatter_plans blocks) and the value-only path:
both must give bit-identical results to computing everything afresh."""

from __future__ import annotations

import importlib

import pytest
import torch
from hypothesis import given

from hookgnn import Graph, HookedGNN
from hookgnn.ops import (ScatterPlan, arg_extreme, compiled, plan, scatter, scatter_max, scatter_min, scatter_plans,
                         use_backend)
from tests.scatter_reference import brute_extreme, graphs

BACKENDS = ["compiled", "torch"]
SCATTER_MODULE = importlib.import_module("hookgnn.ops.scatter")  # the package attribute is the function


@pytest.fixture(scope="module", autouse=True)
def built_kernel():
    compiled.load()


@pytest.fixture(autouse=True)
def compiled_unless_named():
    """Plans are the compiled kernel's: a call below that names no backend means it, whatever
    ``HOOKGNN_SCATTER_BACKEND`` says (CI runs the suite a second time with it set to "torch")."""
    with use_backend("compiled"):
        yield


def _bits(t: torch.Tensor) -> torch.Tensor:
    """Raw bits, so that -0.0 != 0.0 and NaN payloads count."""
    return t.view({8: torch.int64, 4: torch.int32, 2: torch.int16}[t.element_size()]) if t.is_floating_point() else t


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(_bits(a), _bits(b))


def _run(src, index, dim_size, largest, **kw):
    leaf = src.clone().requires_grad_()
    out, arg = (scatter_max if largest else scatter_min)(leaf, index, dim_size, **kw)
    out.backward(torch.arange(out.numel(), dtype=src.dtype).reshape(out.shape) + 1)
    return out.detach(), arg, leaf.grad


def _count_builds(monkeypatch) -> list:
    built = []
    real = ScatterPlan.build.__func__

    def counting(cls, index, dim_size):
        built.append((index.shape[0], dim_size))
        return real(cls, index, dim_size)

    monkeypatch.setattr(ScatterPlan, "build", classmethod(counting))
    return built


# --- plans ----------------------------------------------------------------------------


@given(graphs())
def test_explicit_and_cached_plans_give_bit_identical_values_winners_and_gradients(case):
    src, index, dim_size = case
    given_plan = ScatterPlan.build(index, dim_size)
    for name in BACKENDS:
        for largest in (True, False):
            fresh = _run(src, index, dim_size, largest, backend=name)
            explicit = _run(src, index, dim_size, largest, backend=name, plan=given_plan)
            with scatter_plans():
                cached = [_run(src, index, dim_size, largest, backend=name) for _ in range(2)]
            for got in (explicit, *cached):
                assert all(_same(a, b) for a, b in zip(got, fresh)), name
            assert torch.equal(fresh[1], brute_extreme(src, index, dim_size, largest)[1])


def test_plan_matches_a_brute_force_grouping():
    index = torch.tensor([3, 0, 3, 1, 0, 3])
    p = ScatterPlan.build(index, 5)
    groups = [[e for e in range(6) if index[e] == v] for v in range(5)]
    assert p.perm.tolist() == sum(groups, [])
    assert p.rowptr.tolist() == [0, 2, 3, 3, 6, 6]
    assert (p.num_nodes, p.num_edges) == (5, 6)


def test_inside_a_block_each_index_is_sorted_once(monkeypatch):
    built = _count_builds(monkeypatch)
    src, index, other = torch.randn(30, 4), torch.randint(0, 8, (30,)), torch.randint(0, 8, (30,))
    with scatter_plans():
        for _ in range(3):
            scatter(src, index, 8, "max")
            scatter(src, index[:], 8, "min")  # a new view of the same memory: same plan
            scatter(src, other, 8, "max")
            scatter(src, index, 9, "max")  # another dim_size: another plan
    assert len(built) == 3
    built.clear()
    scatter(src, index, 8, "max")  # outside: nothing cached
    scatter(src, index, 8, "max")
    assert len(built) == 2


def test_an_index_changed_in_place_inside_a_block_gets_a_new_plan():
    src, index = torch.arange(6.0).view(6, 1), torch.tensor([0, 0, 1, 1, 2, 2])
    with scatter_plans():
        first = scatter(src, index, 3, "max")
        index[5] = 0  # bumps the version counter
        second = scatter(src, index, 3, "max")
    assert first.flatten().tolist() == [1.0, 3.0, 5.0]
    assert torch.equal(second, brute_extreme(src, index, 3, True)[0])


def test_inference_mode_indices_are_never_cached_but_explicit_plans_work(monkeypatch):
    built = _count_builds(monkeypatch)
    src = torch.tensor([[1.0], [4.0], [2.0]])
    with torch.inference_mode():
        index = torch.tensor([1, 1, 0])
        with scatter_plans():
            first = scatter(src, index, 2, "max")
            index[1] = 0  # an inference tensor has no version counter to show this
            second = scatter(src, index, 2, "max")
        explicit = scatter(src, index, 2, "min", plan=ScatterPlan.build(index, 2))
    assert first.flatten().tolist() == [2.0, 4.0] and second.flatten().tolist() == [4.0, 1.0]
    assert explicit.flatten().tolist() == [2.0, 1.0] and len(built) == 3


def test_a_plan_of_another_index_or_size_raises():
    index = torch.tensor([0, 1, 1])
    p = ScatterPlan.build(index, 2)
    with pytest.raises(ValueError, match="does not match this index"):
        scatter(torch.ones(3), index.clone(), 2, "max", plan=p)
    with pytest.raises(ValueError, match="dim_size=3"):
        scatter_max(torch.ones(3), index, 3, plan=p)
    index[0] = 1
    with pytest.raises(ValueError, match="modified in place"):
        scatter(torch.ones(3), index, 2, "sum", plan=p)
    with pytest.raises(TypeError, match="ScatterPlan"):
        scatter(torch.ones(3), index, 2, "max", plan=(p.rowptr, p.perm))  # type: ignore[arg-type]


def test_a_plan_checks_its_index_when_built():
    with pytest.raises(ValueError, match=r"index\[1\] = 4 is out of range for dim_size=3"):
        ScatterPlan.build(torch.tensor([0, 4]), 3)
    with pytest.raises((ValueError, TypeError), match="integer|Int"):  # TypeError: jaxtyping in tests
        ScatterPlan.build(torch.tensor([0.0, 1.0]), 3)


def test_the_cache_is_dropped_when_the_block_exits_or_raises():
    with pytest.raises(RuntimeError), scatter_plans():
        assert plan.cached_plan(torch.tensor([0]), 1) is not None
        raise RuntimeError
    assert plan.cached_plan(torch.tensor([0]), 1) is None
    with scatter_plans():
        with scatter_plans():
            inner = plan.cached_plan(index := torch.tensor([0, 0]), 1)
        assert plan.cached_plan(index, 1) is inner  # nested blocks share the outer cache


def _mpnn_graph() -> Graph:
    gen = torch.Generator().manual_seed(0)
    ei = torch.randint(0, 12, (2, 40), generator=gen)
    ei[:, :6] = torch.tensor([[0, 1, 2, 3, 4, 5], [5, 5, 5, 5, 5, 5]])  # a hub: many ties after relu
    return Graph(x=torch.randn(14, 2, generator=gen), edge_index=ei, edge_attr=torch.rand(40, 1, generator=gen))


def test_hooked_gnn_forward_is_bit_identical_with_and_without_plan_reuse(monkeypatch):
    torch.manual_seed(0)
    model = HookedGNN("mpnn", d_hidden=8, node_in=2, edge_in=1, max_steps=5)
    graph = _mpnn_graph()

    def run():
        model.zero_grad()
        out = model(graph)
        out.hidden.square().sum().backward()
        return [out.hidden.detach()] + [p.grad.clone() for p in model.parameters() if p.grad is not None]

    built = _count_builds(monkeypatch)
    reused = run()
    assert len(built) == 1  # five rounds, one sort of edge_index[1]
    monkeypatch.setattr(SCATTER_MODULE, "cached_plan", lambda index, dim_size: None)
    fresh = run()
    assert len(built) == 1 + 5  # one per round
    assert len(reused) == len(fresh) > 1 and all(_same(a, b) for a, b in zip(reused, fresh))


# --- the value-only path --------------------------------------------------------------


def _tricky() -> tuple[torch.Tensor, torch.Tensor]:
    nan = float("nan")
    src = torch.tensor([[0.0, -0.0, 1.0], [-0.0, 0.0, nan], [-0.0, -0.0, 2.0], [5.0, 0.0, nan], [-1.0, -0.0, 0.0]])
    return src, torch.tensor([0, 0, 0, 2, 2])


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("reduce", ["max", "min"])
def test_without_gradients_values_are_bit_identical_to_the_gradient_path(name, reduce):
    src, index = _tricky()
    with_grad = scatter(src.clone().requires_grad_(), index, 4, reduce, backend=name).detach()
    with torch.no_grad():
        no_grad_mode = scatter(src.clone().requires_grad_(), index, 4, reduce, backend=name)
    plain = scatter(src, index, 4, reduce, backend=name)
    assert _same(no_grad_mode, with_grad) and _same(plain, with_grad)
    if name == "compiled":  # ties between 0.0 and -0.0 keep the lowest edge's sign
        assert _same(with_grad[0, :2], src[0, :2])


@given(graphs())
def test_value_only_path_matches_brute_force(case):
    src, index, dim_size = case
    for name in BACKENDS:
        for reduce in ("max", "min"):
            got = scatter(src, index, dim_size, reduce, backend=name)
            assert torch.equal(got, brute_extreme(src, index, dim_size, reduce == "max")[0])


def test_without_gradients_no_winner_is_computed(monkeypatch):
    calls = []
    real = arg_extreme.extreme_forward

    def spy(impl, src, index, dim_size, largest, with_arg, p):
        calls.append(with_arg)
        return real(impl, src, index, dim_size, largest, with_arg, p)

    monkeypatch.setattr(SCATTER_MODULE, "extreme_forward", spy)
    monkeypatch.setattr(arg_extreme, "extreme_forward", spy)
    src, index = torch.randn(10, 3), torch.randint(0, 4, (10,))
    scatter(src, index, 4, "max")
    with torch.no_grad():
        scatter(src.requires_grad_(), index, 4, "min")
    assert calls == [False, False]
    out = scatter(src, index, 4, "max")  # src requires grad now, grad mode on
    assert calls == [False, False, True] and out.requires_grad
