"""``hookgnn.ops.heap.warm_allocator``: after it, freed tensor buffers of a few MiB are reused from the heap instead
of being page-faulted in afresh. Checked in fresh processes (the allocator's state is per process), against the
same loop without the call, by the kernel's own count of minor page faults (``getrusage``)."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from hookgnn.ops.heap import warm_allocator

_LOOP = """
import json, resource, sys, torch
if sys.argv[1] == "warm":
    from hookgnn.ops.heap import warm_allocator
    assert warm_allocator() and not warm_allocator()
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
def rounds():  # 12 buffers of 4 MiB (48 MiB) written, then all freed: one chunk of a job
    bufs = [torch.ones(1 << 20) for _ in range(12)]
    del bufs
rounds()
start = faults()
for _ in range(5):
    rounds()
print(json.dumps((faults() - start) / 5))
"""


def _faults_per_round(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", _LOOP, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                    reason="glibc's dynamic mmap / trim thresholds")
def test_warm_allocator_stops_page_faults_on_reused_buffers() -> None:
    pages = 12 * (4 << 20) // 4096  # the pages one round writes
    cold, warm = _faults_per_round("cold"), _faults_per_round("warm")
    # without it, much of the 48 MiB goes back to the kernel and faults in again: measured 2,662 or 4,908-5,113 faults
    # per round in 22 fresh processes (which arena torch's import leaves the main thread on varies), of 12,288 pages
    assert cold > pages / 8
    assert warm < pages / 20  # with it, they stay in the heap


def test_warm_allocator_runs_once_per_process() -> None:
    warm_allocator()
    assert warm_allocator() is False
