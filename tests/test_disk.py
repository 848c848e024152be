"""Tensors in files and run_with_cache(device="disk"): the in-memory cache, byte for byte."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from handbuilt import no_hooks_left
from hypothesis import given, settings
from hypothesis import strategies as st
import pytest

from hookgnn import Graph, HookedGNN
from hookgnn.cache.disk import TensorFiles
from hookgnn.metrics import OutputSum
from hookgnn.spec import FeatureSpec

SPEC = {"d": FeatureSpec("output", "node", "scalar"), "e": FeatureSpec("output", "edge", "scalar")}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.int64, torch.bool])
@pytest.mark.parametrize("shape", [(), (0,), (3,), (2, 0, 4), (5, 3)])
def test_files_give_back_what_was_written(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    t = (torch.randn(shape) * 10).to(dtype)
    files = TensorFiles()
    files.write("t", t)
    for got in (files.read("t"), files.map("t")):
        assert got.dtype == dtype and got.shape == t.shape and torch.equal(got, t)
    mapped = files.map("t", remove=True)
    folder = files.folder
    files.close()
    assert not folder.exists() and torch.equal(mapped, t)  # a mapping outlives its deleted file


def test_add_zeros_and_names() -> None:
    files = TensorFiles()
    files.zeros("z", (2, 3), torch.float32)
    files.add("z", torch.ones(2, 3))
    files.add("new", torch.full((2,), 2.0))
    files.add("new", torch.full((2,), 2.0))
    assert files.names() == ["z", "new"] and torch.equal(files.read("z"), torch.ones(2, 3))
    assert files.read("new").tolist() == [4.0, 4.0] and files.nbytes("z") == 24
    files.remove("z")
    files.write("again", torch.zeros(1))  # a removed name's file number is never reused
    assert files.read("new").tolist() == [4.0, 4.0]


def _model_and_graph(seed: int, n: int, e: int) -> tuple[HookedGNN, Graph]:
    torch.manual_seed(seed)
    model = HookedGNN("mpnn", d_hidden=4, node_in=1, edge_in=1, spec=SPEC, max_steps=2)
    g = Graph(x=torch.randn(n, 1), edge_index=torch.randint(0, max(n, 1), (2, e)) if n else
              torch.zeros(2, 0, dtype=torch.long), edge_attr=torch.randn(e if n else 0, 1))
    return model, g


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10), n=st.integers(1, 6), e=st.integers(0, 10))
def test_disk_cache_equals_the_memory_cache(seed: int, n: int, e: int) -> None:
    model, g = _model_and_graph(seed, n, e)
    metric = OutputSum("d")  # output "e" does not enter it: its hooks get zero gradients
    grad_metric = lambda out: metric(out, g).sum()  # noqa: E731
    out, mem = model.run_with_cache(g, grad_metric=grad_metric)
    out2, disk = model.run_with_cache(g, grad_metric=grad_metric, device="disk")
    assert list(disk) == list(mem) and disk.axes == mem.axes
    assert mem.grads is not None and disk.grads is not None
    for name in mem:
        assert torch.equal(disk[name], mem[name]), name
        scale = float(mem.grads[name].abs().max()) if mem.grads[name].numel() else 0.0
        torch.testing.assert_close(disk.grads[name], mem.grads[name], rtol=1e-5, atol=1e-6 * scale, msg=name)
    assert torch.equal(out2["d"], out["d"])
    assert not disk.grads["hook_out.e"].any()
    _, plain = model.run_with_cache(g, device="disk", names_filter=lambda name: "update" in name)
    assert plain.grads is None and all(torch.equal(plain[k], mem[k]) for k in plain)
    assert no_hooks_left(model)


def test_disk_cache_removes_hooks_and_files_when_the_forward_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile
    from pathlib import Path

    model, g = _model_and_graph(0, 4, 6)
    root = Path(tempfile.mkdtemp())
    monkeypatch.setattr(tempfile, "tempdir", str(root))

    def boom(t: torch.Tensor, hook: object) -> None:
        raise RuntimeError("hook failed")

    with pytest.raises(RuntimeError, match="hook failed"):
        with model.hooks(fwd_hooks=[("layers.1.hook_update", boom)]):
            model.run_with_cache(g, device="disk")
    assert no_hooks_left(model)
    assert list(root.iterdir()) == []


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a device that is always full)")
@pytest.mark.parametrize("numel", [4, 1 << 18])
def test_a_write_to_a_full_disk_raises_instead_of_losing_the_tensor(tmp_path: Path, numel: int) -> None:
    """A small write used to vanish in a buffer whose failed flush nobody saw (reading back garbage)."""
    import errno

    (tmp_path / "000001.bin").symlink_to("/dev/full")
    files = TensorFiles(tmp_path)
    with pytest.raises(OSError, match="while writing 'layers.0.hook_message'") as raised:
        files.write("layers.0.hook_message", torch.arange(float(numel)))
    assert raised.value.errno == errno.ENOSPC and "layers.0.hook_message" not in files
    files.write("small", torch.ones(3))  # the next file is an ordinary one: the object still works
    assert torch.equal(files.read("small"), torch.ones(3)) and files.written == 12


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (a device that is always full)")
def test_a_full_disk_names_the_hook_and_leaves_no_hooks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every file the cache opens is /dev/full (writes fail with ENOSPC): the error names the hook
    being written, and the model keeps no hook."""
    import errno
    import tempfile

    model, g = _model_and_graph(0, 4, 6)
    folder = tmp_path / "cache"

    def full_folder(*args: object, **kwargs: object) -> str:
        folder.mkdir()
        for i in range(1, 200):
            (folder / f"{i:06d}.bin").symlink_to("/dev/full")
        return str(folder)

    monkeypatch.setattr(tempfile, "mkdtemp", full_folder)
    with pytest.raises(OSError, match="no space left on the disk") as raised:
        model.run_with_cache(g, device="disk")
    assert raised.value.errno == errno.ENOSPC and "names_filter" in str(raised.value)
    assert "'" in str(raised.value) and str(folder) in str(raised.value)
    fired = str(raised.value).split("writing '")[1].split("'")[0]
    assert fired in {p.name for p in model.hook_points()}, fired
    assert no_hooks_left(model)


def test_a_bad_device_name_fails_before_the_forward() -> None:
    model, g = _model_and_graph(0, 4, 6)
    with pytest.raises(ValueError, match="not a torch device nor 'disk'"):
        model.run_with_cache(g, device="dsik")


def test_a_disk_cache_copies_no_activation_in_memory() -> None:
    """Each activation goes to its file as the forward made it: the hook point makes no private copy
    (at E = 1e7 every copy of an [E, d] activation is 2.4 GiB; the file write is the only copy)."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Clones(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
            t = args[0]
            if func is torch.ops.aten.clone.default and t.dim() and t.shape[0] >= 40 and t.is_contiguous():
                # a copy of an activation (rows: nodes or edges), not of a weight slice nor the contiguous
                # copy a strided activation (an expanded constant encoding) needs to be written
                type(self).count += 1
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=2)
    g = Graph(x=torch.randn(40, 1), edge_index=torch.randint(0, 40, (2, 60)))
    with torch.no_grad():
        _, memory = model.run_with_cache(g)
        with Clones():
            _, disk = model.run_with_cache(g, device="disk")
    assert Clones.count == 0
    for name in memory.keys():
        torch.testing.assert_close(disk[name], memory[name], rtol=0, atol=0)  # the same tensors, bit for bit


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(0, 9), width=st.sampled_from([(), (1,), (3,), (2, 2)]),
       dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16, torch.int64]), data=st.data())
def test_read_rows_equals_slicing_the_whole_tensor(rows: int, width: tuple[int, ...], dtype: torch.dtype,
                                                   data: st.DataObject) -> None:
    t = (torch.randn(rows, *width) * 10).to(dtype)
    files = TensorFiles()
    files.write("t", t)
    start = data.draw(st.integers(0, rows))
    stop = data.draw(st.integers(start, rows))
    got = files.read_rows("t", start, stop)
    assert got.dtype == dtype and got.shape == t[start:stop].shape and torch.equal(got, t[start:stop])
    assert files.shape("t") == tuple(t.shape)
    with pytest.raises(IndexError, match="rows"):
        files.read_rows("t", 0, rows + 1)
    files.close()


def test_write_rows_fills_a_tensor_in_place_and_names_a_misfit() -> None:
    files = TensorFiles()
    files.zeros("a", (5, 2), torch.float64)
    want = torch.zeros(5, 2, dtype=torch.float64)
    for start, block in ((3, torch.randn(2, 2, dtype=torch.float64)), (0, torch.randn(1, 2, dtype=torch.float64))):
        files.write_rows("a", start, block)
        want[start:start + len(block)] = block
    assert torch.equal(files.read("a"), want)
    for start, bad in ((4, torch.zeros(2, 2, dtype=torch.float64)), (0, torch.zeros(1, 3, dtype=torch.float64)),
                       (0, torch.zeros(1, 2))):
        with pytest.raises(ValueError, match="do not fit 'a'"):
            files.write_rows("a", start, bad)
    files.close()
