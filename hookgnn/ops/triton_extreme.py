"""Scatter max/min on the GPU in Triton: the ``"triton"`` backend (optional ``[gpu]`` extra).

Same contract as the compiled CPU kernel (:mod:`hookgnn.ops.compiled`): over the plan
of the index (:class:`~hookgnn.ops.plan.ScatterPlan`: ``rowptr [N + 1]``, ``perm [E]``),
one program per (node, block of columns) walks the node's edges in tiles of
``BLOCK_E`` rows and keeps, per column,

.. math::

    \\mathrm{out}_{v c} = \\max_{e : \\mathrm{index}_e = v} \\mathrm{src}_{e c}, \\qquad
    \\mathrm{arg}_{v c} = \\min \\{ e : \\mathrm{index}_e = v,\\ \\mathrm{src}_{e c} =
    \\mathrm{out}_{v c} \\}

Inside a tile the winner is the lowest edge reaching the tile's extreme (the lowest NaN
if the tile has one); a later tile replaces it only on a strict improvement (or a NaN
over a number), so ties go to the lowest edge and NaN wins as in ``torch.amax``. ``out``
is then read from the winner's row, so it is bit-identical to the CPU kernel even for
``-0.0`` against ``0.0``. Nodes without edges get 0 and ``arg = -1``. Value and winner
come from one pass; ``with_arg=False`` skips storing the winner (inference).

Backward: ``grad_src = 0``, then one write per winner, ``grad_src[arg[v, c], c] =
grad_out[v, c]`` (winners of distinct nodes are distinct edges: no atomics).

Kernels run on CUDA tensors. When triton was imported under ``TRITON_INTERPRET=1`` they
run in Triton's interpreter and accept CPU tensors too, which is how the tests check them
without a GPU. Importing this module never needs triton.

>>> import pytest; _ = pytest.importorskip("triton")
>>> available()
True
"""

from __future__ import annotations

import functools
import os
from typing import no_type_check

import torch
from torch import Tensor

try:
    import triton
    import triton.language as tl
except ImportError:  # the optional [gpu] extra
    triton = tl = None

# Larger than any edge id: "no winner in this tile" inside the min (a constexpr global,
# the only kind a kernel may read).
_BIG = tl.constexpr(2**62) if tl is not None else 2**62


def available() -> bool:
    """Whether triton can be imported here."""
    return triton is not None


def interpreting() -> bool:
    """Whether triton runs kernels in its interpreter (``TRITON_INTERPRET=1`` was set when
    triton was imported): they then accept CPU tensors."""
    if not available():
        return False
    from triton.runtime.jit import JITFunction

    return not isinstance(tl.zeros, JITFunction)


def usable_for(t: Tensor) -> bool:
    """Whether the triton backend can run on tensors on ``t``'s device here."""
    return available() and (t.device.type == "cuda" or (interpreting() and t.device.type == "cpu"))


@no_type_check  # kernels are jitted by triton, not type-checked by the jaxtyping import hook
def _extreme_kernel(src, rowptr, perm, out, arg, channels,
                    LARGEST: tl.constexpr, STORE_ARG: tl.constexpr, BLOCK_E: tl.constexpr, BLOCK_C: tl.constexpr):
    node = tl.program_id(0).to(tl.int64)
    cols = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    cmask = cols < channels
    first = tl.load(rowptr + node)
    last = tl.load(rowptr + node + 1)
    best = tl.zeros([BLOCK_C], dtype=src.dtype.element_ty)
    best_nan = tl.zeros([BLOCK_C], dtype=tl.int1)
    winner = tl.full([BLOCK_C], -1, dtype=tl.int64)
    for k0 in range(first, last, BLOCK_E):
        ks = k0 + tl.arange(0, BLOCK_E)
        kmask = ks < last
        edges = tl.load(perm + ks, mask=kmask, other=0).to(tl.int64)
        valid = kmask[:, None] & cmask[None, :]
        x = tl.load(src + edges[:, None] * channels + cols[None, :], mask=valid, other=0)
        nan = (x != x) & valid
        tile_nan = tl.max(nan.to(tl.int32), axis=0) > 0
        if LARGEST:
            m = tl.max(tl.where(valid & (x == x), x, float("-inf")), axis=0).to(best.dtype)
            better = m > best
        else:
            m = tl.min(tl.where(valid & (x == x), x, float("inf")), axis=0).to(best.dtype)
            better = m < best
        hit = valid & tl.where(tile_nan[None, :], nan, x == m[None, :])
        tile_winner = tl.min(tl.where(hit, edges[:, None], _BIG), axis=0)
        take = cmask & ((winner < 0) | (tile_nan & ~best_nan) | (~tile_nan & ~best_nan & better))
        best = tl.where(take, m, best)
        best_nan = tl.where(take, tile_nan, best_nan)
        winner = tl.where(take, tile_winner, winner)
    has = winner >= 0
    value = tl.load(src + tl.where(has, winner, 0) * channels + cols, mask=cmask & has, other=0)
    tl.store(out + node * channels + cols, value, mask=cmask)
    if STORE_ARG:
        tl.store(arg + node * channels + cols, winner, mask=cmask)


@no_type_check
def _winner_kernel(grad_out, arg, grad_src, numel, channels, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    a = tl.load(arg + offs, mask=mask, other=-1).to(tl.int64)
    g = tl.load(grad_out + offs, mask=mask, other=0)
    keep = mask & (a >= 0)
    tl.store(grad_src + tl.where(keep, a, 0) * channels + offs % channels, g, mask=keep)


@functools.cache
def _kernels():
    """The two kernels, jitted on first use (for the interpreter if triton runs in it)."""
    return triton.jit(_extreme_kernel), triton.jit(_winner_kernel)


def _check(*tensors: Tensor) -> None:
    if not available():
        raise RuntimeError("scatter backend 'triton' needs the triton package (pip install 'hookgnn[gpu]')")
    interpret = interpreting()
    for t in tensors:
        if t.device.type != "cuda" and not (interpret and t.device.type == "cpu"):
            raise ValueError(
                f"scatter backend 'triton' runs on CUDA tensors, got a tensor on {t.device} "
                "(with TRITON_INTERPRET=1 set before triton is imported it runs on CPU tensors in "
                "Triton's interpreter)"
            )


def arg_extreme_triton(
    src: Tensor, rowptr: Tensor, perm: Tensor, largest: bool, with_arg: bool
) -> tuple[Tensor, Tensor | None]:
    """``(out [N, C], arg [N, C] int64 or None)`` of ``src [E, C]`` over the plan ``(rowptr, perm)``.

    >>> import pytest; _ = pytest.importorskip("triton")
    >>> dev = "cuda" if torch.cuda.is_available() else "cpu"
    >>> src = torch.tensor([[1.], [3.], [3.]], device=dev)
    >>> rowptr, perm = torch.tensor([0, 3, 3], device=dev), torch.tensor([0, 1, 2], device=dev)
    >>> if not usable_for(src): pytest.skip("no GPU, and triton is not in interpreter mode")
    >>> out, arg = arg_extreme_triton(src, rowptr, perm, True, True)
    >>> out.tolist(), arg.tolist()
    ([[3.0], [0.0]], [[1], [-1]])
    """
    _check(src, rowptr, perm)
    src = src.contiguous()
    num_nodes, (num_edges, channels) = rowptr.shape[0] - 1, src.shape
    arg = torch.full((num_nodes, channels), -1, dtype=torch.long, device=src.device) if with_arg else None
    if num_edges == 0 or num_nodes == 0 or channels == 0:
        return src.new_zeros(num_nodes, channels), arg
    out = src.new_empty(num_nodes, channels)
    block_c = min(triton.next_power_of_2(channels), 128)
    block_e = max(4, min(64, 4096 // block_c))
    extreme, _ = _kernels()
    grid = (num_nodes, triton.cdiv(channels, block_c))
    extreme[grid](src, rowptr, perm, out, arg if with_arg else out, channels,
                  LARGEST=largest, STORE_ARG=with_arg, BLOCK_E=block_e, BLOCK_C=block_c,
                  enable_fp_fusion=False)  # no float arithmetic to fuse; silences triton 3.9's notice
    return out, arg


def winner_gradient_triton(grad_out: Tensor, arg: Tensor, num_edges: int) -> Tensor:
    """``grad_src [E, C]``: zeros, then ``grad_out[v, c]`` written to row ``arg[v, c]``.

    >>> import pytest; _ = pytest.importorskip("triton")
    >>> dev = "cuda" if torch.cuda.is_available() else "cpu"
    >>> if not usable_for(torch.zeros(1, device=dev)): pytest.skip("no GPU, and triton is not in interpreter mode")
    >>> g = winner_gradient_triton(torch.tensor([[5.], [7.]], device=dev), torch.tensor([[2], [-1]], device=dev), 3)
    >>> g.flatten().tolist()
    [0.0, 0.0, 5.0]
    """
    _check(grad_out, arg)
    grad_out, arg = grad_out.contiguous(), arg.contiguous()
    grad_src = grad_out.new_zeros(num_edges, grad_out.shape[1])
    numel = grad_out.numel()
    if numel == 0 or num_edges == 0:
        return grad_src
    block = 1024
    _, winner = _kernels()
    winner[(triton.cdiv(numel, block),)](grad_out, arg, grad_src, numel, grad_out.shape[1], BLOCK=block,
                                         enable_fp_fusion=False)
    return grad_src
