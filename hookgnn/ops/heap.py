"""Keep the C allocator from handing freed tensor buffers back to the kernel between batches.

torch allocates CPU tensors with ``malloc``. glibc's ``malloc`` serves a block larger than its
*mmap threshold* (128 KiB at start) with a fresh ``mmap`` and returns it to the kernel when it is
freed, and it also returns (trims) free memory at the top of its heap above a *trim threshold*;
either way the next buffer of that size is new memory, and each of its 4 KiB pages costs a page
fault (kernel time) on first touch. glibc raises both thresholds by itself, to the size of the
largest ``mmap``-ed block freed so far (mmap) and twice that (trim), up to 32 MiB (64-bit
builds). A job that runs many forward + backward passes over buffers of a few MiB (EAP-IG over a
dataset: each chunk's ``[rows, 64]`` activations and gradients) may never free a block large
enough to raise them, and then pays tens of thousands of page faults per call (measured: a fifth
of :func:`~hookgnn.attribution.eap`'s CPU time on ``bench_eap.py``).

:func:`warm_allocator` frees one block just under 32 MiB once per process, the event glibc itself
waits for, so later blocks up to 32 MiB come from the heap and freed memory up to 64 MiB stays
there for reuse. It never touches the block's pages (no memory is used), changes no tunable (glibc
keeps adjusting its thresholds as before) and is a harmless allocation elsewhere (other C
libraries, other systems). Peak memory is unchanged; up to 64 MiB of freed memory may stay with
the process instead of going back to the kernel.
"""

from __future__ import annotations

import torch

#: Bytes of the block :func:`warm_allocator` frees: just under glibc's 32 MiB ceiling for the thresholds.
WARM_BYTES: int = 31 << 20

_warmed = False


def warm_allocator() -> bool:
    """Free one :data:`WARM_BYTES` CPU block once per process (see the module docstring); returns
    ``True`` when this call did it, ``False`` when an earlier call already had.

    >>> _ = warm_allocator()
    >>> warm_allocator()
    False
    """
    global _warmed
    if _warmed:
        return False
    block = torch.empty(WARM_BYTES, dtype=torch.uint8)  # pages never touched: no memory is used
    del block
    _warmed = True
    return True
