"""The scoped CPU block cache: freed large blocks are reused within a cap, and results do not change."""

from __future__ import annotations

import threading

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import graphs

from hookgnn import HookedGNN
from hookgnn.attribution import attribute
from hookgnn.graph import Graph
from hookgnn.metrics import OutputSum
from hookgnn.ops import block_cache as bc
from hookgnn.ops.backend import use_backend
from hookgnn.spec import FeatureSpec

MIB = 1 << 20
SPEC = {"d": FeatureSpec("output", "node", "scalar")}


@pytest.fixture
def module():  # noqa: ANN201
    """The extension, with the backend choice "auto" (the cache is a no-op under ``HOOKGNN_SCATTER_BACKEND=torch``,
    which its own test covers)."""
    with use_backend("auto"):
        if not bc.is_available():
            pytest.skip("the block cache extension cannot be built here")
        yield bc._load()


def _block(mib: float) -> torch.Tensor:
    return torch.empty(int(mib * MIB), dtype=torch.uint8)


def test_freed_block_is_handed_out_again_for_the_same_size(module) -> None:  # noqa: ANN001
    with bc.block_cache(cap=64 * MIB, min_bytes=MIB) as on:
        assert on and module.is_installed()
        a = _block(8).fill_(7)
        pointer = a.data_ptr()
        del a
        assert bc.block_cache_stats()["idle_bytes"] == 8 * MIB
        b = _block(7.5)  # rounded up to the same 8 MiB block
        other = _block(10)  # another size: a fresh block
        stats = bc.block_cache_stats()
    assert b.data_ptr() == pointer and other.data_ptr() != pointer
    assert (stats["hits"], stats["misses"], stats["idle_bytes"]) == (1, 2, 0)
    assert stats["live_bytes"] == 18 * MIB
    assert not module.is_installed()


def test_small_requests_go_to_the_previous_allocator(module) -> None:  # noqa: ANN001
    with bc.block_cache(cap=64 * MIB, min_bytes=4 * MIB):
        small = torch.arange(1000.0)  # served and freed by torch's allocator under the cache's deleter
        total = small.sum().item()
        del small
        stats = bc.block_cache_stats()
    assert total == 999 * 1000 / 2
    assert (stats["hits"], stats["misses"], stats["live_blocks"]) == (0, 0, 0)


def _reference_idle(frees: list[int], cap: int) -> tuple[list[int], int]:
    """The cap rule in plain Python: a freed block joins the idle list, the oldest idle ones leave first
    until it fits, and a block above the cap never joins. Returns the idle sizes and the evictions."""
    idle: list[int] = []
    evicted = 0
    for size in frees:
        if size > cap:
            continue
        while sum(idle) + size > cap:
            idle.pop(0)
            evicted += 1
        idle.append(size)
    return idle, evicted


def test_idle_bytes_never_exceed_the_cap(module) -> None:  # noqa: ANN001
    sizes, cap = [8, 6, 4, 8, 30], 20  # MiB; one block above the cap
    with bc.block_cache(cap=cap * MIB, min_bytes=MIB):
        blocks = [_block(mib) for mib in sizes]
        for i in range(len(blocks)):
            blocks[i] = None  # type: ignore[call-overload]
            assert bc.block_cache_stats()["idle_bytes"] <= cap * MIB
        stats = bc.block_cache_stats()
    idle, evicted = _reference_idle(sizes, cap)
    assert (stats["idle_bytes"], stats["idle_blocks"], stats["evictions"]) == (sum(idle) * MIB, len(idle), evicted)
    assert evicted >= 1 and stats["peak_idle_bytes"] <= cap * MIB
    assert bc.block_cache_stats()["idle_bytes"] == 0  # unmapped on exit


def test_tensors_living_across_the_scope_boundaries(module) -> None:  # noqa: ANN001
    before = _block(4).fill_(3)
    with bc.block_cache(cap=64 * MIB, min_bytes=MIB):
        del before  # made by torch's allocator: freed by it
        inside = torch.full((MIB,), 2.5)  # 4 MiB, a cached block
        assert bc.block_cache_stats()["live_blocks"] == 1
    assert not module.is_installed()
    assert bool((inside == 2.5).all())  # still valid after the scope
    doubled = inside * 2  # made after the scope: torch's allocator
    assert bc.block_cache_stats()["live_blocks"] == 1
    del inside  # made inside, freed after: unmapped
    stats = bc.block_cache_stats()
    assert (stats["live_blocks"], stats["live_bytes"], stats["idle_bytes"]) == (0, 0, 0)
    assert bool((doubled == 5.0).all())


def test_previous_allocator_restored_after_an_exception(module) -> None:  # noqa: ANN001
    with pytest.raises(RuntimeError, match="boom"):
        with bc.block_cache(cap=64 * MIB, min_bytes=MIB):
            _block(8)  # made and freed at once
            raise RuntimeError("boom")
    assert not module.is_installed()
    stats = bc.block_cache_stats()
    assert stats["idle_bytes"] == 0 and not stats["active"]
    _block(8)  # made and freed at once
    assert bc.block_cache_stats()["misses"] == stats["misses"]  # the next block is not the cache's


def test_nested_scopes_are_one_scope(module) -> None:  # noqa: ANN001
    with bc.block_cache(cap=64 * MIB, min_bytes=MIB):
        with bc.block_cache(cap=1, min_bytes=1) as inner:
            assert inner and bc.block_cache_stats()["cap_bytes"] == 64 * MIB
        assert module.is_installed()
    assert not module.is_installed()


def test_two_threads_allocating_and_freeing_at_once(module) -> None:  # noqa: ANN001
    errors: list[str] = []

    def work(seed: int) -> None:
        rng = torch.Generator().manual_seed(seed)
        for step in range(60):
            mib = int(torch.randint(1, 6, (1,), generator=rng))
            t = torch.full((mib * MIB // 4,), float(seed * 1000 + step))
            if not bool((t == seed * 1000 + step).all()):
                errors.append(f"thread {seed} step {step}")
            del t

    with bc.block_cache(cap=12 * MIB, min_bytes=MIB):
        threads = [threading.Thread(target=work, args=(s,)) for s in (1, 2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = bc.block_cache_stats()
    assert not errors
    assert stats["live_blocks"] == 0 and stats["hits"] > 0 and stats["peak_idle_bytes"] <= 12 * MIB
    assert stats["hits"] + stats["misses"] >= 120  # the filled blocks, and the larger comparisons


def test_bad_arguments_name_the_argument() -> None:
    with pytest.raises(ValueError, match="cap"):
        with bc.block_cache(cap=-1):
            pass
    with pytest.raises(ValueError, match="min_bytes"):
        with bc.block_cache(cap=MIB, min_bytes=0):
            pass


def test_cap_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(bc.CAP_ENV, "3")
    assert bc.default_cap() == 3 * MIB
    monkeypatch.setenv(bc.CAP_ENV, "lots")
    with pytest.raises(ValueError, match=bc.CAP_ENV):
        bc.default_cap()


def test_no_op_with_the_torch_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOKGNN_SCATTER_BACKEND", "torch")
    with bc.block_cache(cap=64 * MIB, min_bytes=MIB) as on:
        a = _block(8)
        pointer = a.data_ptr()
        del a
        assert bc.block_cache_stats() == {}
    assert not on and not bc.is_available()
    monkeypatch.delenv("HOOKGNN_SCATTER_BACKEND")
    with use_backend("torch"), bc.block_cache(cap=64 * MIB) as on:
        assert not on
    assert isinstance(pointer, int)


def _attribution(model: HookedGNN, g: Graph, corr: Graph) -> dict[str, torch.Tensor]:
    attr = attribute(model, g, corr, OutputSum("d"), keep="rows")
    return {**{f"row {h}": attr.row_sums(h) for h in attr.axes}, **{f"feat {h}": attr.feature_sums(h) for h in attr.axes}}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(g=graphs(min_nodes=1, max_nodes=7, max_edges=16, node_features=2, edge_features=1), seed=st.integers(0, 3))
def test_attribute_rows_bit_for_bit_with_and_without_the_cache(module, g: Graph, seed: int) -> None:  # noqa: ANN001
    torch.manual_seed(seed)
    model = HookedGNN("mpnn", d_hidden=6, node_in=2, edge_in=1, spec=SPEC, max_steps=2)
    corr = g.replace(x=torch.randn_like(g.x))
    plain = _attribution(model, g, corr)
    with bc.block_cache(cap=64 * MIB, min_bytes=64) as on:  # every tensor above 64 bytes in reused blocks
        assert on
        _attribution(model, g, corr)  # fills the idle lists with stale values
        cached = _attribution(model, g, corr)
        assert bc.block_cache_stats()["hits"] > 0
    assert plain.keys() == cached.keys()
    for key in plain:
        assert torch.equal(plain[key], cached[key]), key


def test_attribute_on_a_large_graph_runs_in_the_cache(module, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    torch.manual_seed(0)
    n, e = 4096, bc.LARGE_GRAPH
    g = Graph(x=torch.rand(n, 1), edge_index=torch.randint(0, n, (2, e)), edge_attr=torch.rand(e, 1))
    corr = g.replace(x=torch.rand(n, 1))
    model = HookedGNN("mpnn", d_hidden=8, node_in=1, edge_in=1, spec=SPEC, max_steps=2)
    monkeypatch.setenv(bc.CAP_ENV, "0")
    plain = _attribution(model, g, corr)
    assert not bc.block_cache_stats()["active"]
    monkeypatch.setenv(bc.CAP_ENV, "256")
    cached = _attribution(model, g, corr)
    stats = bc.block_cache_stats()
    assert stats["hits"] > 0 and stats["cap_bytes"] == 256 * MIB and not module.is_installed()
    for key in plain:
        assert torch.equal(plain[key], cached[key]), key
