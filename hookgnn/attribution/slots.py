"""Where streamed attribution keeps its differences and sums: :class:`Slots`, in memory or in files.

:func:`~hookgnn.attribution.streamed.streamed_attribution` keeps, per hook, the difference
:math:`\\Delta a = a^s - a^b` until the backward reaches the hook, and then the product's row and / or
feature sums (:func:`reduce_product`, made in one pass by :func:`~hookgnn.ops.products.product_sums`);
with ``offload=`` in files (:class:`~hookgnn.cache.disk.TensorFiles`), read back a block of
:data:`ROWS_PER_BLOCK` rows at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from hookgnn.attribution.row_blocks import add_rows, row_sums, rows_of
from hookgnn.cache.disk import TensorFiles
from hookgnn.ops.products import product_sums
from hookgnn.points import RowSpan

#: Rows of a difference read from its file at a time when products are reduced (``offload=``).
ROWS_PER_BLOCK = 1 << 16


def reduce_product(product: Tensor, to: str) -> Tensor:
    """``product`` kept whole (``"by_entry"``), summed to rows (``"by_row"``: over features) or to
    features (``"by_feature"``: over rows).

    >>> p = torch.tensor([[1., 2.], [3., 4.]])
    >>> reduce_product(p, "by_row").tolist(), reduce_product(p, "by_feature").tolist()
    ([3.0, 7.0], [4.0, 6.0])
    """
    if to == "by_row":  # (no -1 in the shape: it is ambiguous for a hook without rows, e.g. no edges)
        return product.reshape(product.shape[0], math.prod(product.shape[1:])).sum(1)
    if to == "by_feature":
        return product.sum(0)
    return product


def reduced_shape(shape: torch.Size, to: str) -> torch.Size:
    """The shape :func:`reduce_product` gives a product of ``shape``, without making the product.

    >>> reduced_shape(torch.Size([5, 2, 3]), "by_row"), reduced_shape(torch.Size([5, 2, 3]), "by_feature")
    (torch.Size([5]), torch.Size([2, 3]))
    """
    if to == "by_row":
        return shape[:1]
    if to == "by_feature":
        return shape[1:]
    return shape


class Slots:
    """Named tensors in memory, or in files when ``files`` is given; ``field``: the kept field they hold
    (``"by_row"`` ...), for the parts of :meth:`put` and :meth:`add` that cover some rows only."""

    def __init__(self, files: TensorFiles | None, prefix: str, field: str | None = None) -> None:
        self.files, self.prefix, self.field = files, prefix, field
        self.ram: dict[str, Tensor] = {}
        self.done: dict[str, int] = {}  # rows of a difference reduced so far, a block of rows at a time

    def __contains__(self, name: str) -> bool:
        return (self.prefix + name) in self.files if self.files is not None else name in self.ram

    def put(self, name: str, t: Tensor, span: RowSpan | None = None) -> None:
        if span is not None:  # rows span.start:span.stop of a field, or a part of a feature sum
            return add_rows(self, name, t, span)
        if self.files is not None:
            self.files.write(self.prefix + name, t)
        else:
            self.ram[name] = t

    def get(self, name: str) -> Tensor:
        return self.files.read(self.prefix + name) if self.files is not None else self.ram[name]

    def drop(self, name: str) -> None:
        """Forget ``name`` (its file removed)."""
        self.files.remove(self.prefix + name) if self.files is not None else self.ram.pop(name)

    def take(self, name: str) -> Tensor:
        return self.files.read(self.prefix + name, remove=True) if self.files is not None else self.ram.pop(name)

    def add(self, name: str, t: Tensor, span: RowSpan | None = None) -> None:
        if span is not None:
            return add_rows(self, name, t, span)
        if self.files is not None:
            self.files.add(self.prefix + name, t)
        elif name in self.ram:
            self.ram[name].add_(t)
        else:
            self.ram[name] = t

    def reduced(self, name: str, grad: Tensor, to: Sequence[str], remove: bool,
                span: RowSpan | None = None) -> dict[str, Tensor]:
        """:func:`reduce_product` of ``self[name] * grad`` to each field of ``to``; ``remove``: the
        stored tensor is taken (its memory may then hold the product). Row and feature sums come from
        one pass over the difference and the gradient, the product never made
        (:func:`~hookgnn.ops.products.product_sums`); from files the difference is read back a block of
        rows at a time (:data:`ROWS_PER_BLOCK`), so no whole ``[rows, ...]`` difference is held either.
        ``span``: ``grad`` is those rows only; ``remove`` then takes the stored tensor after its last rows."""
        if span is not None:  # rows span.start:span.stop of the difference (hookgnn.attribution.row_blocks)
            if "by_entry" in to:
                product = rows_of(self, name, span.start, span.stop).to(grad.dtype) * grad
                out = {t: reduce_product(product, t) for t in to}
            else:
                by = dict(zip(("by_row", "by_feature"), row_sums(self, name, grad, span, ROWS_PER_BLOCK, remove)))
                out = {t: by[t] for t in to}
            done = self.done.pop(name, 0) + span.stop - span.start
            if remove and done < span.rows:
                self.done[name] = done
            elif remove:  # every row reduced: the difference is no longer needed
                self.ram.pop(name) if self.files is None else self.files.remove(self.prefix + name)
            return out
        key = self.prefix + name
        stored = self.files.shape(key) if self.files is not None else tuple(self.ram[name].shape)
        if "by_entry" in to or stored != tuple(grad.shape) or not grad.dim():
            d = self.take(name) if remove else self.get(name)
            product = d.mul_(grad) if remove and self.files is None and d.shape == grad.shape else d * grad
            return {t: reduce_product(product, t) for t in to}
        if self.files is None:
            d = self.take(name) if remove else self.get(name)
            by = dict(zip(("by_row", "by_feature"), product_sums(d, grad, overwrite=remove)))
            return {t: by[t] for t in to}
        rows = grad.shape[0]
        by_row = grad.new_empty(rows)
        by_feature = grad.new_zeros(grad.shape[1:])
        for s in range(0, rows, ROWS_PER_BLOCK):
            e = min(s + ROWS_PER_BLOCK, rows)
            block_rows, block_features = product_sums(self.files.read_rows(key, s, e).to(grad.dtype), grad[s:e],
                                                      overwrite=True)
            by_row[s:e] = block_rows
            by_feature += block_features
        if remove:
            self.files.remove(key)
        return {t: {"by_row": by_row, "by_feature": by_feature}[t] for t in to}

    def result(self, name: str) -> Tensor:
        if self.files is not None:
            return self.files.map(self.prefix + name, remove=True)
        return self.ram.pop(name)


def difference_in_files(files: TensorFiles, name: str, act: Tensor) -> bool:
    """``"delta:<name>" = "source:<name>" - act``, a block of :data:`ROWS_PER_BLOCK` rows at a time; the
    source file is removed. Returns whether every entry of the difference is 0."""
    files.zeros("delta:" + name, tuple(act.shape), act.dtype)
    zero = True
    for s in range(0, act.shape[0], ROWS_PER_BLOCK):
        e = min(s + ROWS_PER_BLOCK, act.shape[0])
        block = files.read_rows("source:" + name, s, e).to(act).sub_(act[s:e])
        zero = zero and not bool(block.any())
        files.write_rows("delta:" + name, s, block)
    files.remove("source:" + name)
    return zero
