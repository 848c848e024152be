"""A linear layer over a concatenation of gathered rows, applied before the gather.

A message layer often starts with :math:`W [z_u, z_v, e_{uv}] + b` on every edge
:math:`u \\to v`. Split :math:`W` into column blocks :math:`W = [W_s, W_d, W_e]`:

.. math::

    W [z_u, z_v, e_{uv}] + b = (W_s z)_u + (W_d z)_v + W_e e_{uv} + b

so the node blocks can be multiplied on the :math:`N` nodes and their products
gathered to the :math:`E` edges, instead of gathering :math:`z` twice, building the
:math:`[E, \\cdot]` concatenation and multiplying on every edge. The values are those
of the concatenation up to float rounding (sums in another order); autograd keeps no
concatenation.

A block read through a hook point on edges (``hook_src``: the state :math:`h_u` as edge
:math:`u \\to v` reads it) is :math:`h_u + \\delta_{uv}` with :math:`\\delta = h_{src}
- h[src]` the change the hooks made (:class:`SourceRows`): its product is
:math:`(W h)_u + W \\delta_{uv}`, the gradient reaches :math:`h` only through the hook
point, and when the hooks change nothing the result is bit for bit the one without
hooks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn


class Block(NamedTuple):
    """One block of a concatenation, ``width`` columns: ``value[index]`` (``value`` when
    ``index`` is ``None``), plus ``delta`` (already one row per output row) when given,
    less ``delta_base`` when given (the difference is made a chunk of rows at a time, so no
    full ``[rows, width]`` difference is held); ``value=None`` is a block of zeros."""

    value: Tensor | None
    index: Tensor | None
    width: int
    delta: Tensor | None = None
    delta_base: Tensor | None = None


class SourceRows(NamedTuple):
    """The state of each edge's source when ``hook_src`` has hooks: ``rows = h[src]`` as
    it entered the hook point, ``value`` as the hooks left it (a copy of ``rows`` when a
    forward hook is attached, even one that edits in place or only reads; ``rows`` itself
    when only backward hooks are)."""

    rows: Float[Tensor, "edge d"]
    value: Float[Tensor, "edge d"]


def source_block(h: Float[Tensor, "node d"], h_src: SourceRows | None, src: Int[Tensor, " edge"]) -> Block:
    """The block :math:`h_u` of every edge ``u -> v`` for :func:`concat_linear`, read
    through ``hook_src`` when it has hooks (``h_src``, see the module docstring).

    >>> import torch
    >>> h, src = torch.randn(3, 2), torch.tensor([2, 0])
    >>> rows = h[src]; patched = rows + 1
    >>> block = source_block(h, SourceRows(rows, patched), src)
    >>> torch.equal(block.value[block.index] + (block.delta - block.delta_base), patched)
    True
    """
    d = h.shape[-1]
    if h_src is None:
        return Block(h, src, d)
    # A hook that may edit gets its own copy (hookgnn.hooks), so an in-place edit there is a nonzero
    # delta, not a lost one; read-only hooks (a cache, a tap) leave rows itself: a zero delta, skipped.
    return Block(h.detach(), src, d, delta=h_src.value, delta_base=h_src.rows.detach())


def concat_linear(lin: nn.Linear, blocks: Sequence[Block], rows: int) -> Float[Tensor, "row d_out"]:
    """``lin(torch.cat([b.value[b.index] + (b.delta - b.delta_base) for b in blocks], -1))`` without the concatenation.

    Each block is multiplied by its columns of ``lin.weight`` on the rows it has (node
    blocks sharing one ``index`` object in one product, side by side), then gathered with
    ``index_select``; zero blocks are skipped, the bias is added once, and the products
    of the ``delta`` terms are added last (so that zero deltas leave the result bit for bit
    unchanged). ``rows`` is the number of output rows (every ``index`` and ``delta`` has
    that length, every block without an index that many rows). The same as
    ``LinearPlan.of(lin, blocks, rows).rows(0, rows)``.

    >>> import torch
    >>> lin = nn.Linear(5, 3); h = torch.randn(4, 2); e = torch.randn(6, 1)
    >>> src, dst = torch.tensor([0, 1, 1, 3, 2, 0]), torch.tensor([1, 1, 2, 0, 3, 3])
    >>> fast = concat_linear(lin, [Block(h, src, 2), Block(h, dst, 2), Block(e, None, 1)], rows=6)
    >>> torch.allclose(fast, lin(torch.cat([h[src], h[dst], e], -1)), atol=1e-6)
    True
    """
    return LinearPlan.of(lin, blocks, rows).rows(0, rows)


class LinearPlan(NamedTuple):
    """:func:`concat_linear` split in two: the node products, made once (:meth:`of`), and
    the output rows ``start:stop`` gathered from them (:meth:`rows`), so that the rows can
    be made a chunk at a time (:mod:`hookgnn.nn.chunking`) without repeating the node work.

    >>> import torch
    >>> lin = nn.Linear(3, 2); h = torch.randn(4, 3); src = torch.tensor([3, 0, 2])
    >>> plan = LinearPlan.of(lin, [Block(h, src, 3)], 3)
    >>> torch.equal(torch.cat([plan.rows(0, 2), plan.rows(2, 3)]), lin(h)[src])
    True
    """

    per_row: list[tuple[Tensor, Tensor]]  # (value [rows, width], its columns of the weight)
    gathered: list[tuple[Tensor, Tensor]]  # (index [rows], node product [node, d_out]); the first holds the bias
    deltas: list[tuple[Tensor, Tensor | None, Tensor]]  # (delta [rows, width], delta_base or None, weight columns)
    bias: Tensor | None  # the bias still to add (None once a gathered product holds it)
    lin: nn.Linear
    num_rows: int  # every output row: rows(0, num_rows) is the whole output
    chunk: int = 0  # rows(s, s + chunk) for s = 0, chunk, ... take their per-row tensors from ``pieces``
    pieces: dict[int, tuple[Tensor, ...]] | None = None  # id of a per-row tensor -> its split into chunks

    @classmethod
    def of(cls, lin: nn.Linear, blocks: Sequence[Block], rows: int, chunk: int = 0) -> LinearPlan:
        """Check the blocks against ``lin`` and ``rows`` and make the node products; ``chunk``: the
        rows will be asked for in chunks of that many (:mod:`hookgnn.nn.chunking`), so each per-row
        tensor is split once into them (``torch.split``): a chunk's gradient then goes into one
        backward of the split, not a zero-filled ``[rows, d]`` copy per chunk (the backward of a slice)."""
        total = sum(b.width for b in blocks)
        if total != lin.in_features:
            raise ValueError(f"blocks are {total} columns wide in all, but the linear layer takes {lin.in_features}")
        per_row: list[tuple[Tensor, Tensor]] = []
        by_index: list[tuple[Tensor, list[Tensor], list[Tensor]]] = []  # (index, node values, their weights)
        deltas: list[tuple[Tensor, Tensor | None, Tensor]] = []
        start = 0
        for i, (value, index, width, delta, delta_base) in enumerate(blocks):
            # A contiguous copy of the columns: a strided slice makes the product about 2x slower.
            weight = lin.weight[:, start:start + width].contiguous() if width != lin.in_features else lin.weight
            start += width
            if delta is not None:
                _check_block(i, delta, None, width, rows, "delta")
                if delta_base is not None:
                    _check_block(i, delta_base, None, width, rows, "delta_base")
                deltas.append((delta, delta_base, weight))
            if value is None:
                continue
            _check_block(i, value, index, width, rows, "block")
            if index is None:
                per_row.append((value, weight))
                continue
            group = next((g for g in by_index if g[0] is index), None)
            if group is None:
                by_index.append((index, [value], [weight]))
            else:
                group[1].append(value)
                group[2].append(weight)
        # Node blocks of one index: one product of their side-by-side values and weights.
        gathered = [(index, F.linear(values[0], weights[0]) if len(values) == 1
                     else F.linear(torch.cat(values, -1), torch.cat(weights, -1))) for index, values, weights in by_index]
        bias = lin.bias
        if not per_row and gathered and bias is not None:
            gathered[0] = (gathered[0][0], gathered[0][1].add_(bias))
            bias = None
        if not 0 < chunk < rows:
            return cls(per_row, gathered, deltas, bias, lin, rows)
        per_row_tensors = [v for v, _ in per_row] + [t for d, b, _ in deltas for t in (d, b) if t is not None]
        return cls(per_row, gathered, deltas, bias, lin, rows, chunk, {id(t): t.split(chunk) for t in per_row_tensors})

    def _cut(self, t: Tensor, start: int, stop: int, piece: int | None) -> Tensor:
        """Rows ``start:stop`` of the per-row tensor ``t``: ``t`` itself for all rows, else piece
        ``piece`` of its split (when ``of`` split it), else a slice. (A method, not a closure in
        :meth:`rows`: a closure would be built, and in the tests type-wrapped, on every call.)"""
        if start == 0 and stop == self.num_rows:
            return t
        if piece is not None and self.pieces is not None and id(t) in self.pieces:
            return self.pieces[id(t)][piece]
        return t[start:stop]

    def rows(self, start: int, stop: int) -> Float[Tensor, "row d_out"]:
        """Output rows ``start:stop``: per-row products, bias, gathered products, deltas, in that order."""
        on_rows: Tensor | None = None
        # All rows: the tensors themselves, not slices (whose backward makes a zero-filled [rows, d] copy);
        # one of the chunks ``of`` split the per-row tensors into: that piece
        piece = start // self.chunk if self.pieces and start % self.chunk == 0 and \
            stop == min(start + self.chunk, self.num_rows) else None
        for value, weight in self.per_row:
            product = F.linear(self._cut(value, start, stop, piece), weight)
            on_rows = product if on_rows is None else on_rows.add_(product)
        gathered, bias = self.gathered, self.bias
        if on_rows is None and gathered:
            on_rows = gathered[0][1].index_select(0, gathered[0][0][start:stop])
            gathered = gathered[1:]
        elif on_rows is None:
            weight = self.lin.weight
            on_rows = weight.new_zeros(stop - start, weight.shape[0]) if bias is None else bias.expand(stop - start, -1).clone()
            bias = None
        if bias is not None:
            on_rows = on_rows.add_(bias)
        for index, product in gathered:
            on_rows = on_rows.add_(product.index_select(0, index[start:stop]))
        for delta, base, weight in self.deltas:
            if base is not None and _same_memory(delta, base):
                # The hooks left h_src as it was: W (delta - base) is exactly 0, and only its gradient is needed.
                if torch.is_grad_enabled() and delta.requires_grad:
                    on_rows = _UnchangedRows.apply(on_rows, self._cut(delta, start, stop, piece), weight)
                continue
            diff = self._cut(delta, start, stop, piece) if base is None else self._cut(delta, start, stop, piece) - self._cut(base, start, stop, piece)
            on_rows = on_rows.add_(F.linear(diff, weight))
        return on_rows


def _same_memory(a: Tensor, b: Tensor) -> bool:
    """Whether ``a`` and ``b`` view the very same elements (so ``a - b`` is 0 wherever it is finite)."""
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape and a.stride() == b.stride() and a.dtype == b.dtype


class _UnchangedRows(torch.autograd.Function):
    """``on_rows + W (delta - base)`` where ``delta`` and ``base`` are one tensor, so the sum adds
    nothing: ``on_rows`` is returned as it is (no ``[rows, d]`` difference, no product), while the
    backward still hands ``delta`` its gradient :math:`g W`; the weight's gradient,
    :math:`g^T (delta - base)`, is 0 and is left out."""

    @staticmethod
    def forward(ctx: Any, on_rows: Tensor, delta: Tensor, weight: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(weight)
        ctx.mark_dirty(on_rows)
        return on_rows

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor | None, None]:  # type: ignore[override]
        (weight,) = ctx.saved_tensors
        return grad, grad.mm(weight) if ctx.needs_input_grad[1] else None, None


def _check_block(i: int, value: Tensor, index: Tensor | None, width: int, rows: int, what: str) -> None:
    if value.dim() != 2 or value.shape[1] != width:
        raise ValueError(f"{what} {i} should be [rows, {width}], got {tuple(value.shape)}")
    have = value.shape[0] if index is None else index.shape[0]
    if have != rows:
        kind = "rows" if index is None else "indices"
        raise ValueError(f"{what} {i} has {have} {kind}, expected {rows}")


def gather_rows(value: Float[Tensor, "node *d"], index: Int[Tensor, " edge"]) -> Float[Tensor, "edge *d"]:
    """``value[index]`` by ``index_select``, whose backward (an ``index_add``) is several
    times faster than that of advanced indexing (``index_put`` with accumulation).

    >>> import torch
    >>> gather_rows(torch.tensor([[1.], [2.]]), torch.tensor([1, 1, 0])).flatten().tolist()
    [2.0, 2.0, 1.0]
    """
    return value.index_select(0, index)
