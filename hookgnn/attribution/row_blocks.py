"""Streamed attribution over hooks called a block of rows at a time (a message MLP in edge chunks).

On a huge graph the message MLP's hidden layer, ``[E, d_mlp]`` before and after its activation,
runs in edge chunks (:mod:`hookgnn.nn.chunking`), and where every hook on its hidden hook points
is :func:`~hookgnn.points.row_local` the hooks are called once per chunk, with the chunk's rows
:math:`[s, t)` as ``hook.span`` (:class:`~hookgnn.points.RowSpan`). The estimates of
:func:`~hookgnn.attribution.gradients.attribute` are row-local: for a chunk of rows,

.. math::

    \\Delta a_{[s,t)} = a^s_{[s,t)} - a^b_{[s,t)}, \\qquad
    \\mathrm{by\\_row}_{[s,t)} = \\sum_f \\big(\\Delta a_{[s,t)} \\odot \\bar g_{[s,t)}\\big)_{\\cdot f}, \\qquad
    \\mathrm{by\\_feature} = \\sum_{\\text{chunks}} \\sum_{r \\in [s,t)} \\big(\\Delta a \\odot \\bar g\\big)_{r \\cdot},

so the source run writes rows :math:`[s, t)` of its file, the base run writes rows :math:`[s, t)`
of the difference from those of the source (:class:`RowDifferences`), and the gradient tap of a
chunk reduces that chunk's gradient against rows :math:`[s, t)` of the difference
(:func:`row_sums`, :func:`add_rows`): no hook holds a whole ``[E, d_mlp]`` activation, difference or
gradient (what autograd saves for the chunks' backward is the same as without hooks there). The numbers are those of the
whole-tensor path up to float rounding (the feature sums add chunk by chunk).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from hookgnn.ops.products import product_sums
from hookgnn.points import RowSpan, read_only, row_local


def row_taps(on_forward: Callable[[Tensor, Any], bool | None] | None, on_grad: Callable[..., None],
             hook: Any) -> Callable[[Tensor], None]:
    """The gradient callback of one tap at ``hook``: ``on_grad(name, grad)``, or where ``on_grad`` and
    ``on_forward`` (if given) are :func:`~hookgnn.points.row_local` (so that the tap is: it may be called
    on a block of rows), ``on_grad(name, grad, span)`` with the rows of the forward call that made the tap
    (``hook.span``; ``None``: all rows).

    >>> from hookgnn.points import HookPoint, row_local
    >>> seen = []
    >>> hp = HookPoint(axis="edge"); hp.span = RowSpan(2, 4, 9)
    >>> row_taps(None, row_local(lambda n, g, span: seen.append(span)), hp)(torch.ones(2))
    >>> seen
    [RowSpan(start=2, stop=4, rows=9)]
    """
    name, span = hook.name, hook.span
    if taps_row_local(on_forward, on_grad):
        return lambda g: on_grad(name, g, span)
    return lambda g: on_grad(name, g)


def taps_row_local(on_forward: Callable[[Tensor, Any], bool | None] | None, on_grad: Callable[..., None]) -> bool:
    """Whether a tap calling these callbacks may be :func:`~hookgnn.points.row_local`: both are
    (``on_forward`` may be ``None``)."""
    return bool(getattr(on_grad, "row_local", False) and getattr(on_forward, "row_local", True))


def rows_of(slots: Any, name: str, start: int, stop: int) -> Tensor:
    """Rows ``start:stop`` of the tensor ``slots`` (a streamed attribution's ``_Slots``) holds as ``name``:
    read from its file, or a view of it in memory."""
    if slots.files is not None:
        return slots.files.read_rows(slots.prefix + name, start, stop)
    return slots.ram[name][start:stop]


def stored_shape(slots: Any, name: str) -> tuple[int, ...]:
    """The shape of what ``slots`` holds as ``name``."""
    return slots.files.shape(slots.prefix + name) if slots.files is not None else tuple(slots.ram[name].shape)


def row_sums(slots: Any, name: str, grad: Tensor, span: RowSpan, block: int, overwrite: bool) -> tuple[Tensor, Tensor]:
    """``(by_row [t - s], by_feature)`` of ``difference[s:t] * grad``, ``grad`` being the gradient of rows
    ``span`` = ``s:t``, read ``block`` rows at a time; ``overwrite``: rows of a difference in memory may hold
    the product (they are not read again). ``ValueError`` if ``grad`` does not fit the difference."""
    a, b = span.start, span.stop
    stored = stored_shape(slots, name)
    if stored != (span.rows, *grad.shape[1:]) or grad.shape[0] != b - a:
        raise ValueError(f"{name}: the gradient of rows {a}:{b} of {span.rows} has shape {tuple(grad.shape)}, "
                         f"which does not fit the stored difference {stored}")
    by_row, by_feature = grad.new_empty(b - a), grad.new_zeros(grad.shape[1:])
    for s in range(a, b, block):
        e = min(s + block, b)
        rows_sum, features_sum = product_sums(rows_of(slots, name, s, e).to(grad.dtype), grad[s - a:e - a],
                                              overwrite=overwrite or slots.files is not None)
        by_row[s - a:e - a] = rows_sum
        by_feature += features_sum
    return by_row, by_feature


def add_rows(slots: Any, name: str, part: Tensor, span: RowSpan) -> None:
    """``part``, reduced from rows ``span``, added to the field ``slots`` keeps (``slots.field``): to those
    rows of a ``by_row`` / ``by_entry`` field (zeros until written), to the whole ``by_feature`` sum."""
    if slots.field == "by_feature":
        return slots.add(name, part)
    if name not in slots:
        if slots.files is not None:
            slots.files.zeros(slots.prefix + name, (span.rows, *part.shape[1:]), part.dtype)
        else:
            slots.ram[name] = part.new_zeros(span.rows, *part.shape[1:])
    if slots.files is None:
        slots.ram[name][span.start:span.stop] += part
    else:
        key = slots.prefix + name
        slots.files.write_rows(key, span.start, slots.files.read_rows(key, span.start, span.stop).add_(part.cpu()))


class RowDifferences:
    """The differences :math:`a^s - a^b` of hooks called a block of rows at a time, each row once, in
    order: rows ``span`` of ``"delta:<name>"`` (in files) or of one tensor given to ``deltas.put`` once
    the last rows are in (in memory), from the same rows of the source activation (``source[name]``; in
    files ``"source:<name>"``, removed then). ``own``: source tensors shared with no other hook, whose
    rows may be overwritten by the difference. The full shape, dtype and axis go to ``shapes`` / ``axes``.
    """

    def __init__(self, source: dict[str, Tensor], files: Any, deltas: Any, own: set[str], keep: str,
                 shapes: dict[str, Any], axes: dict[str, str]) -> None:
        self.source, self.files, self.deltas, self.own, self.keep = source, files, deltas, own, keep
        self.shapes, self.axes = shapes, axes
        self.partial: dict[str, tuple[int, Tensor, Tensor | None]] = {}  # next row, source, delta in memory

    def __call__(self, act: Tensor, name: str, span: RowSpan, axis: str) -> None:
        if span.start == 0:
            self._begin(act, name, span, axis)
        if name not in self.partial or self.partial[name][0] != span.start:
            raise ValueError(f"{name}: rows {span.start}:{span.stop} of {span.rows} came out of order (a row-local "
                             "hook must see every row once, in order)")
        _, s, d = self.partial[name]
        a, b = span.start, span.stop
        if self.files is not None:
            self.files.write_rows("delta:" + name, a, self.files.read_rows("source:" + name, a, b).to(act).sub_(act))
        elif d is s:  # overwrite the source's rows, as the whole-tensor path does
            s[a:b].sub_(act)
        else:
            torch.sub(s[a:b].to(act), act, out=d[a:b])
        self.partial[name] = (b, s, d)
        if b == span.rows:
            del self.partial[name]
            self.files.remove("source:" + name) if self.files is not None else self.deltas.put(name, d)

    def _begin(self, act: Tensor, name: str, span: RowSpan, axis: str) -> None:
        if name not in self.source:
            raise ValueError(f"{name} fired more than once in one forward (a module called twice?): "
                             f"attribution with keep={self.keep!r} needs each hook point once per forward")
        s, full = self.source.pop(name), torch.Size([span.rows, *act.shape[1:]])
        if s.shape != full:
            raise ValueError(f"{name}: the source run's activation has shape {tuple(s.shape)}, the base run's "
                             f"{tuple(full)}")
        self.shapes[name], self.axes[name] = (full, act.dtype), axis
        if self.files is not None:
            self.files.zeros("delta:" + name, tuple(full), act.dtype)
            d = None
        else:
            same = name in self.own and s.dtype == act.dtype and s.device == act.device
            d = s if same else act.new_empty(full)
        self.partial[name] = (0, s, d)


def write_source(files: Any, act: Tensor, hook: Any) -> Tensor:
    """``act`` written to ``files`` as ``"source:<name>"`` (where ``hook.span`` is set: those rows of it, the
    file made at the first block); returns a meta tensor of the whole activation's shape and dtype."""
    span, key = hook.span, "source:" + hook.name
    if span is None:
        files.write(key, act)
        return torch.empty(act.shape, dtype=act.dtype, device="meta")
    if span.start == 0:
        files.zeros(key, (span.rows, *act.shape[1:]), act.dtype)
    files.write_rows(key, span.start, act)
    return torch.empty((span.rows, *act.shape[1:]), dtype=act.dtype, device="meta")


def source_to_files(model: Any, src: Any, names_filter: Any, files: Any, forward_kwargs: dict[str, Any]) -> dict[str, Tensor]:
    """A no-grad forward of ``src`` that writes each hook's activation to ``files`` (``"source:<name>"``) as
    it fires (a hook called a block of rows at a time writes those rows of its file); returns, in firing
    order, a meta tensor (shape and dtype, no memory) per hook: the source run of
    :func:`~hookgnn.attribution.gradients.attribute` with ``offload=``."""
    fired: dict[str, Tensor] = {}

    @row_local  # a block of rows goes to its rows of the file
    @read_only  # written to its file, never edited or kept
    def save(act: Tensor, hook: Any) -> None:
        fired[hook.name] = write_source(files, act, hook)

    with torch.no_grad(), model.hooks(fwd_hooks=[(p.name, save) for p in model.hook_points(names_filter)]):
        model(src, **forward_kwargs)
    return fired
