"""Argument checks shared by the scatter entry points and :class:`~hookgnn.ops.plan.ScatterPlan`."""

from __future__ import annotations

import torch
from torch import Tensor


def check_index(src: Tensor | None, index: Tensor, dim_size: int) -> None:
    """Raise ``ValueError`` naming the problem if ``index`` cannot scatter ``src`` (``None``:
    check the index alone).

    >>> check_index(torch.zeros(3, 2), torch.tensor([0, 1, 1]), dim_size=2)
    >>> check_index(torch.zeros(3, 2), torch.tensor([0, 1, 5]), dim_size=2)
    Traceback (most recent call last):
    ...
    ValueError: scatter index[2] = 5 is out of range for dim_size=2
    """
    check_shapes(src, index, dim_size)
    if index.numel() > 0:
        low, high = torch.aminmax(index)  # one pass; the position is only looked up on failure
        if int(low) < 0 or int(high) >= dim_size:
            pos = int(((index < 0) | (index >= dim_size)).nonzero()[0, 0])
            raise ValueError(
                f"scatter index[{pos}] = {int(index[pos])} is out of range for dim_size={dim_size}"
            )


def check_shapes(src: Tensor | None, index: Tensor, dim_size: int) -> None:
    """:func:`check_index` without the pass over the index values.

    >>> check_shapes(torch.zeros(3), torch.tensor([0, 1]), 2)
    Traceback (most recent call last):
    ...
    ValueError: scatter src has shape (3,) but index has 2 entries; src must be [E, *features] with E = len(index)
    """
    if index.dim() != 1:
        raise ValueError(f"scatter index must be 1-D [E], got shape {tuple(index.shape)}")
    if index.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"scatter index must be an integer tensor, got {index.dtype}")
    if src is not None and (src.dim() == 0 or src.shape[0] != index.shape[0]):
        raise ValueError(
            f"scatter src has shape {tuple(src.shape)} but index has {index.shape[0]} entries; "
            "src must be [E, *features] with E = len(index)"
        )
    if src is not None and src.device != index.device:
        raise ValueError(f"scatter src is on {src.device} but index is on {index.device}")
    if dim_size < 0:
        raise ValueError(f"scatter dim_size must be >= 0, got {dim_size}")
