"""The compiled scatter kernel's pool of output blocks: reused blocks hold no stale values."""

from __future__ import annotations

import pytest
import torch

from hookgnn.ops import compiled, scatter
from tests.scatter_reference import brute_extreme, brute_gradient

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def kernel():  # noqa: ANN201
    module = compiled.load()
    if module is None:
        pytest.skip("the compiled kernel cannot be built here")
    return module


@pytest.mark.parametrize("largest", [True, False])
def test_outputs_written_into_reused_blocks_equal_the_brute_force_reference(kernel, largest):
    edges, nodes, channels = 4096, 300, 64  # grad_src is 1 MiB: pooled
    compiled.release_buffers()
    seen = set()
    for seed in range(3):  # the later calls write into the blocks the earlier ones freed
        torch.manual_seed(seed)
        src = torch.randn(edges, channels, requires_grad=True)
        index = torch.randint(0, nodes - 10, (edges,))  # the last 10 nodes get no edge
        out = scatter(src, index, nodes, "max" if largest else "min", backend="compiled")
        grad_out = torch.randn(nodes, channels)
        out.backward(grad_out)
        want, arg = brute_extreme(src.detach(), index, nodes, largest)
        torch.testing.assert_close(out.detach(), want, atol=0, rtol=0)
        torch.testing.assert_close(src.grad, brute_gradient(grad_out, arg, edges, (channels,)), atol=0, rtol=0)
        seen.add(src.grad.data_ptr())
        del out, src
    assert len(seen) < 3  # a freed gradient block was reused
    assert kernel.pool_bytes() >= edges * channels * 4
    assert compiled.release_buffers() >= edges * channels * 4
    assert kernel.pool_bytes() == 0


def _pooled_run(edges: int = 4096, nodes: int = 300, channels: int = 64) -> None:
    """One max scatter forward and backward whose 1 MiB gradient block goes back to the pool when freed."""
    src = torch.randn(edges, channels, requires_grad=True)
    out = scatter(src, torch.randint(0, nodes, (edges,)), nodes, "max", backend="compiled")
    out.backward(torch.randn(nodes, channels))


def test_pool_limit_keeps_no_freed_block_inside_and_restores_the_limit(kernel):
    torch.manual_seed(0)
    compiled.release_buffers()
    _pooled_run()
    held = kernel.pool_bytes()
    assert held >= 4096 * 64 * 4  # the environment's limit pools it
    with compiled.pool_limit(0):
        assert kernel.pool_bytes() == 0  # above the new limit: freed on entry
        for _ in range(3):
            _pooled_run()
            assert kernel.pool_bytes() == 0
        with pytest.raises(RuntimeError, match="inside"):
            with compiled.pool_limit(10 << 20):  # nested: its own limit, the outer one back after an error
                _pooled_run()
                assert kernel.pool_bytes() >= 4096 * 64 * 4
                raise RuntimeError("inside")
        assert kernel.pool_bytes() == 0  # the outer limit again: the nested block's blocks freed on exit
        _pooled_run()
        assert kernel.pool_bytes() == 0
    _pooled_run()
    assert kernel.pool_bytes() >= 4096 * 64 * 4  # the environment's limit is back
    compiled.release_buffers()


@pytest.mark.parametrize("bad", [-1, True])
def test_pool_limit_names_a_bad_limit(bad: object) -> None:
    with pytest.raises(ValueError, match="pool_limit takes a number of bytes"):
        with compiled.pool_limit(bad):  # type: ignore[arg-type]
            pass
