"""Message MLPs over edges in chunks, so that one huge graph fits in memory.

A message MLP on the edges of a graph, :math:`m_{uv} = W_{out}\\,\\sigma(W_{in} z_{uv} + b_{in}) + b_{out}`,
holds its hidden layer for every edge at once: ``[E, d_mlp]`` before and after
:math:`\\sigma`, plus the gathered node products that make :math:`W_{in} z_{uv}`
(:func:`~hookgnn.nn.projection.concat_linear`). At E = 1e7 edges and d_mlp = 64 each
such tensor is 2.4 GiB. Every row of the MLP depends on its own edge only, so the
edges can be cut into chunks of ``C`` rows; each chunk's hidden layer is made, used and
dropped, and only the ``[E, d]`` message is kept whole:

.. math::

    m_{[s, s + C)} = \\mathrm{MLP}(z_{[s, s + C)}), \\qquad s = 0, C, 2C, \\dots

Chunking is on when the graph has more edges than the chunk size ``C``
(:func:`edge_chunk_size`); it then works at one of two depths:

* no hook on the MLP's hidden hook points (``hook_pre``, ``hook_post``): the whole MLP
  runs a chunk at a time, and only the ``[E, d]`` message is made whole;
* hooks there, every one :func:`~hookgnn.points.row_local` (the taps and differences of
  :func:`~hookgnn.attribution.gradients.attribute` with ``keep="rows"``): the whole MLP runs a
  chunk at a time and the hooks are called once per chunk, with the chunk's rows as
  ``hook.span`` (:class:`~hookgnn.points.RowSpan`), so each sees every row exactly once; no chunk
  is checkpointed (a recomputation would call the hooks again), so with gradients the hidden
  layers the backward needs are kept, as with a whole tensor;
* any other hook on either (caching or patching the hidden neurons): a hook there sees the whole
  ``[E, d_mlp]`` tensor, so only the first layer's gathers and sums
  (:class:`~hookgnn.nn.projection.LinearPlan`) run in chunks, written into one
  ``[E, d_mlp]`` tensor that then goes through the hooks as usual.

``hook_src`` and ``hook_message`` are outside the chunks: their hooks see, and may edit
in place, the whole ``[E, d]`` tensors as always.

Values: the same per-row arithmetic as the unchunked MLP; a matrix product on a block
of rows may use another kernel path than on all rows, so results agree to float
rounding (about 1e-6 relative at float32), not always bit for bit. No sum runs across
edges inside the chunks, so the aggregation is untouched. With gradients enabled each
chunk is checkpointed (:func:`torch.utils.checkpoint.checkpoint`): its hidden layer is
recomputed in the backward instead of being saved, so the backward costs one more MLP
forward and saves ``[E, d_mlp]`` per round; except where whole rounds are checkpointed
already (:func:`rounds_checkpointed`), where a nested chunk checkpoint would keep every
round's first-layer node products alive until the backward. Chunks that are not checkpointed
are written one by one into the output as they are made, also with gradients (each chunk's
backward reads its own rows of the output's gradient), so no concatenation holds the chunks and
the output at once; and the edge block's rows come from one split of it made for the chunks
(:meth:`~hookgnn.nn.projection.LinearPlan.of`), not a slice each (a slice's backward zero-fills
a gradient as large as the whole block, once per chunk).

The chunk size is, in order: the ``HOOKGNN_EDGE_CHUNK_SIZE`` environment variable (a
positive integer, or 0 to turn chunking off), else :data:`DEFAULT_EDGE_CHUNK_SIZE`
(2**20 edges: graphs of up to a million edges are untouched). :func:`edge_chunk_size`
as a context manager overrides both for a block of code.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from hookgnn.nn.mlp import HookedMLP
from hookgnn.nn.projection import Block, LinearPlan, concat_linear
from hookgnn.points import RowSpan

#: Chunk size used when neither ``HOOKGNN_EDGE_CHUNK_SIZE`` nor :func:`edge_chunk_size` sets one.
DEFAULT_EDGE_CHUNK_SIZE = 2**20
ENV_VAR = "HOOKGNN_EDGE_CHUNK_SIZE"
_override: list[int] = []
_rounds_checkpointed: list[bool] = []  # non-empty inside rounds_checkpointed()


def current_edge_chunk_size() -> int:
    """The chunk size in force (0: chunking off); see the module docstring for the order.

    >>> with edge_chunk_size(1000):
    ...     current_edge_chunk_size()
    1000
    """
    if _override:
        return _override[-1]
    raw = os.environ.get(ENV_VAR)
    if raw is None or raw.strip() == "":
        return DEFAULT_EDGE_CHUNK_SIZE
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{ENV_VAR}={raw!r}: expected a number of edges (an integer >= 0; 0 turns chunking off)") from None
    if value < 0:
        raise ValueError(f"{ENV_VAR}={raw!r}: expected a number of edges >= 0 (0 turns chunking off)")
    return value


@contextmanager
def edge_chunk_size(size: int) -> Iterator[None]:
    """Run message MLPs over at most ``size`` edges at a time inside the ``with`` block
    (0: never chunk). Nested blocks restore the outer size on exit, also after an error.

    >>> import torch
    >>> from hookgnn.nn import MPNN
    >>> layer = MPNN(4); h = torch.randn(5, 4); ei = torch.randint(0, 5, (2, 9))
    >>> whole = layer(h, ei, x=h)
    >>> with edge_chunk_size(2):
    ...     chunked = layer(h, ei, x=h)
    >>> torch.allclose(chunked, whole, atol=1e-6)
    True

    :param size: the most edges one chunk of a message MLP holds; 0 turns chunking off.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"edge_chunk_size takes a number of edges >= 0 (0 turns chunking off), got {size!r}")
    _override.append(size)
    try:
        yield
    finally:
        _override.pop()


def mlp_over_blocks(mlp: HookedMLP, blocks: Sequence[Block], rows: int) -> Float[Tensor, "row d_out"]:
    """``mlp.from_pre(concat_linear(mlp.lin_in, blocks, rows))``, over chunks of rows when
    chunking is on (see the module docstring for when, and what it keeps exact).

    >>> import torch
    >>> mlp = HookedMLP(4, 8, 3, axis="edge"); h = torch.randn(5, 2); src = torch.tensor([0, 4, 1])
    >>> blocks = [Block(h, src, 2), Block(torch.randn(3, 2), None, 2)]
    >>> with edge_chunk_size(2):
    ...     chunked = mlp_over_blocks(mlp, blocks, 3)
    >>> torch.allclose(chunked, mlp.from_pre(concat_linear(mlp.lin_in, blocks, 3)), atol=1e-6)
    True
    """
    size = current_edge_chunk_size()
    if size == 0 or rows <= size:
        return mlp.from_pre(concat_linear(mlp.lin_in, blocks, rows))
    plan = LinearPlan.of(mlp.lin_in, blocks, rows, size)  # node products once, for every chunk
    spans = [(s, min(s + size, rows)) for s in range(0, rows, size)]
    hidden = (mlp.hook_pre, mlp.hook_post)
    if any(p.has_hooks for p in hidden):
        if all(p.hooks_row_local for p in hidden):  # each hook called once per chunk, told its rows
            return _in_chunks(lambda s, e: mlp.from_pre(plan.rows(s, e), RowSpan(s, e, rows)), spans, recompute=False)
        # Hooks see the whole hidden layer: only the first layer's gathers run in chunks.
        return mlp.from_pre(_in_chunks(plan.rows, spans, recompute=False))
    return _in_chunks(lambda s, e: mlp.from_pre(plan.rows(s, e)), spans, recompute=True)


@contextmanager
def rounds_checkpointed() -> Iterator[None]:
    """Inside the block the caller checkpoints whole rounds (as
    :func:`hookgnn.attribution.checkpointed.checkpointed_run` does), so edge chunks are not
    checkpointed again. A chunk checkpoint nested in a round's keeps its inputs (the first
    layer's node products, two ``[N, d_mlp]`` per round) from the round's forward until its
    backward, for every round at once; without it, the round's own recomputation holds its
    chunks' hidden layers for that one round only. Values are the same either way.

    >>> import torch
    >>> from hookgnn.nn import MPNN
    >>> layer = MPNN(4); h = torch.randn(5, 4, requires_grad=True); ei = torch.randint(0, 5, (2, 9))
    >>> with edge_chunk_size(2), rounds_checkpointed():
    ...     out = layer(h, ei, x=h)
    >>> torch.allclose(out, layer(h, ei, x=h), atol=1e-6)
    True
    """
    _rounds_checkpointed.append(True)
    try:
        yield
    finally:
        _rounds_checkpointed.pop()


def _in_chunks(rows: Callable[[int, int], Tensor], spans: list[tuple[int, int]], recompute: bool) -> Tensor:
    """``rows(s, e)`` for every span, stacked: each chunk written into one tensor as it is made
    (with gradients through :class:`_IntoRows`, so no chunk outlives its copy and no concatenation
    doubles the output), or, when ``recompute`` (unless whole rounds are checkpointed,
    :func:`rounds_checkpointed`), each chunk checkpointed and concatenated."""
    if torch.is_grad_enabled() and recompute and not _rounds_checkpointed:
        return torch.cat([checkpoint(rows, s, e, use_reentrant=False) for s, e in spans])
    first = rows(*spans[0])
    out = _write(first.new_empty(spans[-1][1], *first.shape[1:]), first, *spans[0])
    del first
    for s, e in spans[1:]:
        out = _write(out, rows(s, e), s, e)
    return out


def _write(out: Tensor, rows: Tensor, s: int, e: int) -> Tensor:
    """``out[s:e] = rows``, through :class:`_IntoRows` where ``rows`` needs a gradient."""
    if torch.is_grad_enabled() and rows.requires_grad:
        return _IntoRows.apply(out, rows, s, e)
    out[s:e] = rows
    return out


class _IntoRows(torch.autograd.Function):
    """``out[s:e] = rows`` in place, for chunks that fill ``out`` once each: the backward hands ``rows`` the
    gradient's rows ``s:e`` (a view) and the earlier ``out`` the gradient itself, not a copy with those rows
    zeroed (as a slice assignment's backward does, per chunk): no chunk reads another's rows, and the empty
    tensor the chunks start from needs no gradient."""

    @staticmethod
    def forward(ctx: Any, out: Tensor, rows: Tensor, s: int, e: int) -> Tensor:  # type: ignore[override]
        out[s:e] = rows
        ctx.mark_dirty(out)
        ctx.span = (s, e)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None, None]:  # type: ignore[override]
        s, e = ctx.span
        return grad, grad[s:e], None, None
