"""The processes of a run: who am I, how many are we, and the few collectives hookgnn needs.

hookgnn runs on ``torch.distributed`` as launched by ``torchrun``: every process runs
the same script, :func:`init_from_env` joins the process group that ``torchrun``
describes in the environment (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``), and :meth:`World.current` reads rank and size from it. Without a
process group (a plain ``python script.py``) the world is one process and every
collective is the identity, so the same code runs either way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """Rank and size of the processes in ``group`` (``None``: the default group).

    >>> w = World()
    >>> w.rank, w.size, w.is_main, list(w.shard(range(5)))
    (0, 1, True, [0, 1, 2, 3, 4])
    """

    rank: int = 0
    size: int = 1
    group: Any = None

    @staticmethod
    def current(group: Any = None) -> World:
        """The world of the initialised process group (or of ``group``), else one process."""
        if dist.is_available() and dist.is_initialized():
            return World(dist.get_rank(group), dist.get_world_size(group), group)
        return World()

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0 (the one that writes files and prints)."""
        return self.rank == 0

    def shard(self, items: Iterable[T]) -> Iterator[T]:
        """This rank's share of ``items``: items ``rank, rank + size, rank + 2 size, ...``.

        A sequence (``len`` and indexing) is indexed directly, so other ranks' items are
        never touched; any other iterable is walked and the others' items skipped.
        """
        if isinstance(items, Sequence) or (hasattr(items, "__len__") and hasattr(items, "__getitem__")):
            for i in range(self.rank, len(items), self.size):  # type: ignore[arg-type]
                yield items[i]  # type: ignore[index]
            return
        for i, item in enumerate(items):
            if i % self.size == self.rank:
                yield item

    def share(self, n: int) -> tuple[int, int]:
        """Rank's contiguous slice ``[lo, hi)`` of ``n`` items, sizes differing by at most one.

        >>> [World(r, 3).share(8) for r in range(3)]
        [(0, 2), (2, 5), (5, 8)]
        """
        return self.rank * n // self.size, (self.rank + 1) * n // self.size

    def all_reduce_sum(self, t: Tensor) -> Tensor:
        """``t`` summed over the ranks, in place (returned); the identity for one process."""
        if self.size == 1:
            return t
        if _backend(self.group) == "nccl" and t.device.type != "cuda":
            moved = t.to(f"cuda:{torch.cuda.current_device()}")
            dist.all_reduce(moved, group=self.group)
            return t.copy_(moved)
        dist.all_reduce(t, group=self.group)
        return t

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order: ``[obj]`` for one process."""
        if self.size == 1:
            return [obj]
        out: list[Any] = [None] * self.size
        dist.all_gather_object(out, obj, group=self.group)
        return out

    def agree(self, error: BaseException | None, what: str) -> None:
        """Raise on every rank if ``error`` happened on any (so no rank waits forever in a collective).

        The rank where it happened re-raises its own error; the others raise a
        ``RuntimeError`` naming that rank and its message.
        """
        reports = self.gather(None if error is None else f"{type(error).__name__}: {error}")
        if error is not None:
            raise error
        failed = [(r, m) for r, m in enumerate(reports) if m is not None]
        if failed:
            rank, message = failed[0]
            raise RuntimeError(f"{what} failed on rank {rank} of {self.size}: {message}")


def _backend(group: Any) -> str:
    try:
        return str(dist.get_backend(group))
    except (RuntimeError, ValueError):
        return ""


def launched_world() -> tuple[int, int]:
    """``(rank, world size)`` from the environment ``torchrun`` sets, ``(0, 1)`` outside it.

    Reads only the environment, so it works before the process group exists.

    >>> rank, size = launched_world()
    >>> 0 <= rank < size
    True
    """
    try:
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise ValueError(f"RANK={os.environ.get('RANK')!r} and WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} must be "
                         "integers (set by torchrun)") from None


def default_backend() -> str:
    """``"nccl"`` when CUDA is available, else ``"gloo"`` (CPU)."""
    return "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"


def local_device(backend: str | None = None) -> torch.device:
    """This process's device: ``cuda:LOCAL_RANK`` under NCCL, else the CPU."""
    if (backend or default_backend()) == "nccl":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cpu")


def init_from_env(backend: str | None = None, timeout_s: float = 600.0) -> World:
    """Join the process group ``torchrun`` describes (once), and return the world.

    Outside ``torchrun`` (``WORLD_SIZE`` unset or 1) nothing is initialised and the world
    is one process. ``backend`` defaults to :func:`default_backend`; under NCCL the
    current CUDA device becomes ``LOCAL_RANK``.
    """
    _, size = launched_world()
    if size <= 1 or not dist.is_available():
        return World.current()
    if not dist.is_initialized():
        backend = backend or default_backend()
        if backend == "nccl":
            torch.cuda.set_device(local_device(backend))
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_s))
    return World.current()
