"""A scoped caching allocator for large CPU blocks: freed tensor buffers are reused, not unmapped.

On the CPU torch allocates every tensor with ``malloc``. glibc serves a block above its mmap
threshold (at most 32 MiB) with a fresh ``mmap`` and unmaps it on free, so every large temporary
(a ``[E, d]`` activation or gradient: 256 MiB at E = 1e6, d = 64) is new memory that the kernel
zero-fills page by page on first touch. ``attribute(keep="rows")`` at E = 1e6 spent about half its
CPU time there (``clear_page_erms``); letting glibc keep everything it freed removed that cost but
held every block the process ever had (24 GB peak).

Inside :func:`block_cache` a :class:`c10::Allocator` of hookgnn's compiled extension
(``csrc/block_cache.cpp``) is the CPU allocator (``c10::SetCPUAllocator``). A request of at least
``min_bytes`` is rounded up to a multiple of 2 MiB, :math:`b = 2^{21} \\lceil n / 2^{21} \\rceil`
(of 256 KiB below 4 MiB, :math:`b = 2^{18} \\lceil n / 2^{18} \\rceil`), and served by the most
recently freed idle block of exactly ``b`` bytes, else by a fresh 2 MiB-aligned ``mmap`` (with
``madvise(MADV_HUGEPAGE)`` when ``THP_MEM_ALLOC_ENABLE`` is on, as torch's own allocator does). A
freed block becomes idle; the idle bytes never exceed ``cap`` (the oldest idle blocks are unmapped
first, a block larger than ``cap`` is unmapped at once), so the process's peak grows by at most
``cap`` (plus the rounding, under 2 MiB per live block) over what it would be without the cache.
Smaller requests go to the allocator that was current before. The counters are under one lock: torch frees tensors from its
worker threads.

On exit (also when the block raises) the previous allocator is restored and the idle blocks are
unmapped. A tensor made inside and still alive keeps its block, which is unmapped when the tensor
dies; a tensor made before the scope and freed inside goes back through its own allocator. The scope
is process-wide (tensors that other threads make meanwhile use it too); nested scopes are one scope,
the outermost one's. The bytes of a block are whatever it last held (torch's own allocator does not
zero either: ``torch.empty`` promises no values).

Where the extension is unavailable (``HOOKGNN_SCATTER_BACKEND=torch``, not a POSIX system, no C++
compiler, or the build fails, after one warning) the context is a no-op and yields ``False``: the
same results, without the reuse.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import torch

from hookgnn.ops import compiled
from hookgnn.ops.backend import get_backend

SOURCE = Path(__file__).parent / "csrc" / "block_cache.cpp"
#: Requests of at least this many bytes are cached (smaller ones go to the previous allocator).
MIN_BYTES: int = 1 << 20
#: Environment variable with the default cap in MiB (``0`` turns the cache off where hookgnn uses it).
CAP_ENV: str = "HOOKGNN_BLOCK_CACHE_MB"
#: The default cap on idle bytes, 2 GiB (see ``docs/benchmarks.md``, the ``keep="rows"`` section).
DEFAULT_CAP_BYTES: int = 2 << 30

_lock = threading.Lock()
_state: dict[str, object] = {"module": None, "tried": False, "depth": 0}


def _load() -> ModuleType | None:
    """Build (or import the cached build of) the extension once; ``None`` where it cannot run."""
    if _state["tried"]:
        return _state["module"]  # type: ignore[return-value]
    with _lock:
        if _state["tried"]:
            return _state["module"]  # type: ignore[return-value]
        module = None
        if os.name == "posix" and compiled.compiler() is not None:
            from torch.utils.cpp_extension import load

            digest = hashlib.sha1("\n".join([SOURCE.read_text(), torch.__version__, sys.prefix]).encode()).hexdigest()
            try:
                with compiled._quiet_torch_build():
                    module = load(name=f"hookgnn_block_cache_{digest[:12]}", sources=[str(SOURCE)],
                                  extra_cflags=["-O2"], verbose=bool(os.environ.get("HOOKGNN_VERBOSE_BUILD")))
            except Exception as exc:  # noqa: BLE001 - the cache is an optimisation: run without it
                compiled._warn(f"could not build the CPU block cache ({compiled._reason(exc)}); large CPU "
                               "buffers are allocated fresh each time: identical results, only slower.")
        _state.update(module=module, tried=True)
        return module


def is_available() -> bool:
    """Whether :func:`block_cache` can install the cache here (builds the extension on first call).

    >>> isinstance(is_available(), bool)
    True
    """
    return get_backend() != "torch" and _load() is not None


def default_cap() -> int:
    """The cap hookgnn's own scopes use: ``HOOKGNN_BLOCK_CACHE_MB`` MiB if set, else :data:`DEFAULT_CAP_BYTES`.

    >>> default_cap() >= 0
    True
    """
    env = os.environ.get(CAP_ENV, "").strip()
    if not env:
        return DEFAULT_CAP_BYTES
    try:
        mib = float(env)
    except ValueError:
        raise ValueError(f"{CAP_ENV}={env!r}: expected a number of MiB (0 turns the block cache off)") from None
    if mib < 0:
        raise ValueError(f"{CAP_ENV}={env!r}: the cap cannot be negative")
    return int(mib * 2**20)


def _huge_pages() -> bool:
    return os.environ.get("THP_MEM_ALLOC_ENABLE", "").strip().lower() in ("1", "true", "on", "yes")


@contextlib.contextmanager
def block_cache(cap: int | None = None, min_bytes: int = MIN_BYTES) -> Iterator[bool]:
    """Reuse freed CPU blocks of at least ``min_bytes`` inside the ``with`` block, holding at most
    ``cap`` idle bytes (see the module docstring); yields whether the cache is on.

    :param cap: most idle bytes kept for reuse; ``None``: :func:`default_cap`; ``0`` keeps nothing.
    :param min_bytes: smallest request served by the cache (smaller ones go to the previous allocator).

    >>> with block_cache(cap=64 << 20) as on:
    ...     a = torch.empty(8 << 20, dtype=torch.uint8); pointer = a.data_ptr(); del a
    ...     b = torch.empty(8 << 20, dtype=torch.uint8)
    >>> b.data_ptr() == pointer or not on  # on: the freed block again (off: whatever malloc gives)
    True
    """
    cap = default_cap() if cap is None else cap
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
        raise ValueError(f"block_cache: cap must be a number of bytes >= 0, got {cap!r}")
    if isinstance(min_bytes, bool) or not isinstance(min_bytes, int) or min_bytes < 1:
        raise ValueError(f"block_cache: min_bytes must be a number of bytes >= 1, got {min_bytes!r}")
    module = _load() if get_backend() != "torch" and cap > 0 else None
    with _lock:
        outer = module is not None and _state["depth"] == 0
        if outer:
            on = bool(module.install(min_bytes, cap, _huge_pages()))  # type: ignore[union-attr]
        else:
            on = module is not None and bool(module.is_installed())  # type: ignore[union-attr]
        if on:
            _state["depth"] = int(_state["depth"]) + 1  # type: ignore[call-overload]
    try:
        yield on
    finally:
        if on:
            with _lock:
                _state["depth"] = int(_state["depth"]) - 1  # type: ignore[call-overload]
                if _state["depth"] == 0:
                    module.uninstall()  # type: ignore[union-attr]


def block_cache_stats() -> dict[str, int]:
    """Counters of the block cache since the last scope began: ``hits`` (requests served by an idle
    block), ``misses`` (fresh maps), ``evictions``, ``idle_bytes`` / ``idle_blocks``, ``peak_idle_bytes``,
    ``live_bytes`` / ``live_blocks`` (cached-size blocks in use, also after the scope), ``cap_bytes``,
    ``min_bytes``, ``active`` (0 or 1). Empty where the cache is unavailable.

    >>> with block_cache(cap=64 << 20) as on:
    ...     block = torch.empty(8 << 20, dtype=torch.uint8); del block
    ...     stats = block_cache_stats()
    >>> stats["idle_bytes"] == 8 << 20 if on else stats == {}
    True
    """
    module = _load() if get_backend() != "torch" else None
    return {} if module is None else {k: int(v) for k, v in module.stats().items()}


#: Graphs with at least this many edges (or nodes) run hookgnn's large-graph calls inside :func:`block_cache`.
LARGE_GRAPH: int = 1 << 16


def block_cache_for(edges: int, nodes: int = 0) -> contextlib.AbstractContextManager[bool]:
    """:func:`block_cache` with the default cap for a graph of at least :data:`LARGE_GRAPH` edges or nodes,
    else a context that does nothing (yields ``False``); what ``attribute`` runs in.

    :param edges: edges of the graph.
    :param nodes: nodes of the graph.

    >>> with block_cache_for(10, 10) as on:
    ...     on
    False
    """
    return block_cache() if max(edges, nodes) >= LARGE_GRAPH else contextlib.nullcontext(False)
