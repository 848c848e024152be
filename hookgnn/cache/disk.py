"""Tensors in files: activations written as they are made and mapped back, so RAM holds few of them.

:class:`TensorFiles` keeps raw tensor bytes, one file per name, in a folder. Writing
uses ordinary file writes (the pages go to the operating system's cache, not to this
process), :meth:`TensorFiles.read` copies a file back into memory, and
:meth:`TensorFiles.map` maps it (``numpy.memmap``, copy-on-write): pages are read on
first touch and can be evicted by the operating system, so a mapped cache larger than
RAM works. Any dtype is stored, bfloat16 included (bytes, not numpy dtypes).

``run_with_cache(..., device="disk")`` (:func:`run_to_disk`) writes each activation as
its hook point produces it and each gradient as the backward reaches it (see
:mod:`hookgnn.cache.grad_taps`), then maps them back.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor


class TensorFiles:
    """Raw tensor files in ``folder``, or in a fresh temporary folder (inside ``within``) removed by
    :meth:`close` or with this object.

    >>> files = TensorFiles()
    >>> files.write("a", torch.arange(6.0).reshape(2, 3))
    >>> files.map("a").sum().item(), files.read("a").shape
    (15.0, torch.Size([2, 3]))
    >>> "a" in files, files.nbytes("a")
    (True, 24)
    """

    def __init__(self, folder: str | os.PathLike[str] | None = None, *,
                 within: str | os.PathLike[str] | None = None) -> None:
        if folder is None:  # a fresh folder inside ``within`` (default: the system's temporary folder)
            self.folder = Path(tempfile.mkdtemp(prefix="hookgnn-tensors-", dir=within))
            self._cleanup: Any = weakref.finalize(self, shutil.rmtree, self.folder, True)
        else:
            self.folder = Path(folder)
            self.folder.mkdir(parents=True, exist_ok=True)
            self._cleanup = None
        self._meta: dict[str, tuple[tuple[int, ...], torch.dtype, str]] = {}
        self._made = 0  # files ever made: names are never reused, even after removals
        #: Bytes written so far (every :meth:`write`, including overwrites).
        self.written = 0

    def __contains__(self, name: object) -> bool:
        return name in self._meta

    def names(self) -> list[str]:
        """The names written, in order."""
        return list(self._meta)

    def path(self, name: str) -> Path:
        """The file that holds ``name``."""
        return self.folder / self._meta[name][2]

    def shape(self, name: str) -> tuple[int, ...]:
        """The shape of the tensor stored as ``name``."""
        return self._meta[name][0]

    def nbytes(self, name: str) -> int:
        """Bytes of the tensor stored as ``name``."""
        shape, dtype, _ = self._meta[name]
        return int(np.prod(shape, dtype=np.int64)) * torch.empty((), dtype=dtype).element_size()

    def write(self, name: str, tensor: Tensor) -> None:
        """Store ``tensor`` (detached, on CPU) as ``name``, replacing what was there. A full disk
        raises ``OSError`` (``ENOSPC``) naming ``name``, its size, the folder and what this
        object has written so far (the partial file is removed)."""
        t = tensor.detach().to("cpu").contiguous()
        file = self._meta[name][2] if name in self._meta else self._new_file()
        try:
            with open(self.folder / file, "wb") as f:
                if t.numel():  # a file write, not numpy's tofile: that loses the errno of a full disk
                    f.write(t.reshape(-1).view(torch.uint8).numpy().data)
        except OSError as e:
            if e.errno != errno.ENOSPC:
                raise
            self._meta.pop(name, None)
            (self.folder / file).unlink(missing_ok=True)
            size = t.numel() * t.element_size()
            raise OSError(errno.ENOSPC, f"no space left on the disk of {self.folder} while writing {name!r} "
                          f"({tuple(t.shape)}, {size / 2**20:.1f} MiB) after {self.written / 2**30:.2f} GiB written "
                          f"by this job; free space there: {shutil.disk_usage(self.folder).free / 2**30:.2f} GiB "
                          "(write to a folder on a larger disk, or cache fewer hook points: names_filter=)") from e
        self._meta[name] = (tuple(t.shape), t.dtype, file)
        self.written += t.numel() * t.element_size()

    def zeros(self, name: str, shape: Sequence[int], dtype: torch.dtype) -> None:
        """Store a tensor of zeros as ``name`` without writing them (a sparse file)."""
        file = self._meta[name][2] if name in self._meta else self._new_file()
        self._meta[name] = (tuple(shape), dtype, file)
        with open(self.folder / file, "wb") as f:
            f.truncate(self.nbytes(name))

    def _new_file(self) -> str:
        self._made += 1
        return f"{self._made:06d}.bin"

    def add(self, name: str, tensor: Tensor) -> None:
        """``name += tensor`` (stores ``tensor`` when ``name`` is new)."""
        if name not in self._meta:
            self.write(name, tensor)
        else:
            self.write(name, self.read(name).add_(tensor.to("cpu")))

    def read(self, name: str, remove: bool = False) -> Tensor:
        """A copy of ``name`` in memory; with ``remove`` the file is deleted."""
        shape, dtype, _ = self._meta[name]
        raw = np.fromfile(self.path(name), dtype=np.uint8)
        out = _from_bytes(torch.from_numpy(raw), shape, dtype)
        if remove:
            self.remove(name)
        return out

    def read_rows(self, name: str, start: int, stop: int) -> Tensor:
        """Rows ``start:stop`` (along the first dimension) of ``name``, read into memory: a
        block of a large tensor without reading or mapping the rest.

        >>> files = TensorFiles()
        >>> files.write("a", torch.arange(12.0).reshape(4, 3))
        >>> files.read_rows("a", 1, 3).tolist()
        [[3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]
        """
        shape, dtype, _ = self._meta[name]
        if not shape or not 0 <= start <= stop <= shape[0]:
            raise IndexError(f"rows {start}:{stop} of {name!r}, which has shape {shape}")
        row = self.nbytes(name) // shape[0] if shape[0] else 0
        out = torch.empty((stop - start, *shape[1:]), dtype=dtype)
        if out.numel():
            with open(self.path(name), "rb") as f:
                f.seek(start * row)
                f.readinto(out.reshape(-1).view(torch.uint8).numpy().data)
        return out

    def write_rows(self, name: str, start: int, rows: Tensor) -> None:
        """Write ``rows`` over rows ``start:start + len(rows)`` of ``name`` (made with :meth:`zeros` or
        :meth:`write`; same dtype and row shape), in place in its file.

        >>> files = TensorFiles()
        >>> files.zeros("a", (3, 2), torch.float32)
        >>> files.write_rows("a", 1, torch.ones(2, 2))
        >>> files.read("a").tolist()
        [[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
        """
        shape, dtype, _ = self._meta[name]
        t = rows.detach().to("cpu").contiguous()
        if t.dtype != dtype or tuple(t.shape[1:]) != tuple(shape[1:]) or not 0 <= start <= start + len(t) <= shape[0]:
            raise ValueError(f"rows {tuple(t.shape)} {t.dtype} at {start} do not fit {name!r}, {shape} {dtype}")
        if t.numel():
            with open(self.path(name), "r+b") as f:
                f.seek(start * (self.nbytes(name) // shape[0]))
                f.write(t.reshape(-1).view(torch.uint8).numpy().data)
        self.written += t.numel() * t.element_size()

    def map(self, name: str, remove: bool = False) -> Tensor:
        """``name`` mapped from its file (pages read on first touch; writable, copy-on-write).

        With ``remove`` the file is deleted now; the mapping stays valid until the tensor
        is freed (the space on disk is released then).
        """
        shape, dtype, _ = self._meta[name]
        if self.nbytes(name) == 0:
            out = torch.empty(shape, dtype=dtype)
        else:
            raw = np.memmap(self.path(name), dtype=np.uint8, mode="c")
            out = _from_bytes(torch.from_numpy(raw), shape, dtype)
        if remove:
            self.remove(name)
        return out

    def remove(self, name: str) -> None:
        """Delete ``name``'s file."""
        path = self.path(name)
        del self._meta[name]
        path.unlink(missing_ok=True)

    def close(self) -> None:
        """Delete every file (and a temporary folder); mapped tensors stay valid."""
        for name in list(self._meta):
            self.remove(name)
        if self._cleanup is not None:
            self._cleanup()


def _from_bytes(raw: Tensor, shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    if raw.numel() == 0:
        return torch.empty(shape, dtype=dtype)
    return raw.view(dtype).reshape(shape)


def run_to_disk(
    model: Any,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    names: Sequence[str],
    grad_metric: Callable[[Any], Tensor] | None,
) -> tuple[Any, dict[str, Tensor], dict[str, Tensor] | None]:
    """The forward of ``run_with_cache(..., device="disk")``: ``(output, activations, gradients)``.

    Each activation of ``names`` is written when its hook point fires and not kept in
    memory; with ``grad_metric``, each gradient is written when the backward reaches it
    (a gradient tap), and an activation the metric does not depend on gets a gradient
    of zeros. Both come back mapped from files that are already deleted (nothing is
    left on disk once the tensors are freed).
    """
    from hookgnn.cache.grad_taps import GradientTaps

    files = TensorFiles()
    taps = GradientTaps() if grad_metric is not None else None
    fired: dict[str, int] = {}  # a hook point that fires twice keeps its last activation, as in memory

    def save(t: Tensor, hook: Any) -> Tensor | None:
        name = hook.name
        files.write(name, t)
        fired[name] = count = fired.get(name, 0) + 1
        if taps is None:
            return None

        def write_grad(g: Tensor) -> None:
            if fired[name] == count:
                files.write("grad:" + name, g)

        return taps.tap(t, write_grad)

    # written to a file (and tapped), never edited: the hook point hands it over without a private copy
    # (the mark hookgnn.points.read_only sets; cache sits below points in the layers)
    save.read_only = True  # type: ignore[attr-defined]

    try:
        with torch.set_grad_enabled(grad_metric is not None or torch.is_grad_enabled()):
            with model.hooks(fwd_hooks=[(n, save) for n in names]):
                out = model(*args, **kwargs)
            if taps is not None:
                assert grad_metric is not None
                taps.backward(grad_metric(out))
        order = list(fired)
        acts = {n: files.map(n, remove=True) for n in order}
        grads = None
        if taps is not None:
            for n in order:
                if "grad:" + n not in files:
                    files.zeros("grad:" + n, acts[n].shape, acts[n].dtype)
            grads = {n: files.map("grad:" + n, remove=True) for n in order}
    finally:
        files.close()
    return out, acts, grads
