"""Components and computational edges: the units that patching and circuits talk about.

A :class:`Component` is one slice of one hook point's activation:

* ``Component("layers.3.hook_update", index=5)``: node 5's state after round 3 (a row);
* ``Component("layers.3.hook_message", feature=2)``: neuron 2 of every message of round 3
  (a column, MINAR's granularity, but per round: rounds are different hook names);
* ``Component("layers.3.hook_message", index=7, feature=2)``: one neuron of one edge.

Whether ``index`` counts nodes or edges comes from the hook point's ``axis`` (never
from its name). Computational edges are of two kinds:

* :class:`MessageEdge` (round ``t``, graph edge ``e = u -> v``): links node ``u``'s state
  entering round ``t`` (``layers.{t-1}.hook_update[u]``, or ``hook_node_embed[u]`` for
  ``t = 0``) to node ``v``'s aggregation ``layers.t.hook_aggregation[v]``. It is carried
  by row ``e`` of ``layers.t.hook_src``: patching that row changes this message alone.
* :class:`WeightEdge`: neuron ``i`` of one hook feeding neuron ``j`` of the next through
  a weight ``W[j, i]`` (or an elementwise map, or a min/max aggregation), described per
  processor by a list of :class:`~hookgnn.nn.wiring.Link` (see :func:`~hookgnn.nn.wiring.links_of`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor

from hookgnn._moved import moved_name
from hookgnn.hooks import HookedRootModule
from hookgnn.nn.wiring import ResolvedLink

Granularity = Literal["row", "feature", "row_feature"]


@dataclass(frozen=True, order=True)
class Component:
    """A slice of a hook's activation: a row (``index``), a column (``feature``) or both.

    >>> c = Component("layers.0.hook_update", index=3)
    >>> c, c in {Component("layers.0.hook_update", 3)}
    (Component(hook='layers.0.hook_update', index=3, feature=None), True)

    :param hook: the full hook name.
    :param index: the row (a node, an edge ...) or ``None`` for every row.
    :param feature: the column (a neuron) or ``None`` for every column.
    """

    hook: str
    index: int | None = None
    feature: int | None = None


class MessageHooks(NamedTuple):
    """Where a round's message lives in a model: the hook that carries it (``hook_src``,
    edge axis), the node state entering the round and the one leaving it, and the
    aggregation that receives it."""

    carrier: str
    state_in: str
    state_out: str
    aggregation: str


def message_hooks(model: HookedRootModule, t: int) -> MessageHooks:
    """The :class:`MessageHooks` of round ``t``, asked of the model (no name parsing).

    >>> from hookgnn import HookedGNN
    >>> message_hooks(HookedGNN("mpnn", 4, node_in=1, max_steps=2), 1)
    MessageHooks(carrier='layers.1.hook_src', state_in='layers.0.hook_update', state_out='layers.1.hook_update', aggregation='layers.1.hook_aggregation')
    """
    return MessageHooks(model.round_hook("hook_src", t), model.state_hook(t), model.state_hook(t + 1),
                        model.round_hook("hook_aggregation", t))


def check_carriers(model: HookedRootModule, hooks: Iterable[str]) -> None:
    """Raise ``ValueError`` unless each hook carries one row per graph edge (axis ``"edge"``),
    as a :class:`MessageEdge` (graph edge ``e`` = row ``e``) needs.

    A layer that passes messages over its own edge list (e.g. with added self-loops) has
    ``hook_src`` rows on axis ``"none"``: row ``e`` is not graph edge ``e`` there.

    >>> from hookgnn import HookedGNN
    >>> check_carriers(HookedGNN("mpnn", 4, node_in=1, max_steps=1), ["layers.0.hook_src"])
    """
    for h in hooks:
        axis = model.resolve(h)[0].axis
        if axis != "edge":
            raise ValueError(f"{h} has axis {axis!r}, not one row per graph edge: the layer passes messages over its "
                             "own edge list (e.g. with added self-loops), so row e there is not graph edge e and single "
                             "graph-edge messages cannot be patched or scored at it. Patch or attribute its rows as "
                             "components instead (patch with hooks(model, names), patch_each, attribute: exact on the "
                             "layer's own rows), or use a layer without them")


def _layers_hooks(t: int) -> MessageHooks:
    return MessageHooks(f"layers.{t}.hook_src", state_name(t), state_name(t + 1), f"layers.{t}.hook_aggregation")


@dataclass(frozen=True, order=True)
class MessageEdge:
    """The message on graph edge ``edge = u -> v`` in round ``round``.

    ``hooks`` says which hook points carry it; :func:`message_edges` fills them in from
    the model and :meth:`in_model` asks a model for them (patching and circuits always
    do). An edge drawn by hand without them, read without a model (``prune``, a figure),
    names a :class:`~hookgnn.models.HookedGNN`'s ``layers.{t}`` hook points. They take no
    part in equality or order.

    >>> MessageEdge(2, 7, 1, 4).carrier
    Component(hook='layers.2.hook_src', index=7, feature=None)

    :param round: the round ``t``.
    :param edge: the graph edge's index ``e`` in ``edge_index``.
    :param u: its source node.
    :param v: its target node.
    :param hooks: the hook points that carry the message (filled in from a model), or ``None``.
    """

    round: int
    edge: int
    u: int
    v: int
    hooks: MessageHooks | None = field(default=None, compare=False, repr=False)

    def in_model(self, model: HookedRootModule) -> MessageEdge:
        """This edge with its hook points asked of ``model`` (:func:`message_hooks`, the rounds protocol).

        >>> from hookgnn import HookedGNN
        >>> MessageEdge(1, 0, 0, 1).in_model(HookedGNN("mpnn", 4, node_in=1, max_steps=2)).sender.hook
        'layers.0.hook_update'
        """
        return replace(self, hooks=message_hooks(model, self.round))

    @property
    def _hooks(self) -> MessageHooks:
        return self.hooks if self.hooks is not None else _layers_hooks(self.round)

    @property
    def sender(self) -> Component:
        """Node ``u``'s state entering round ``round`` (the message's upstream end)."""
        return Component(self._hooks.state_in, self.u)

    @property
    def receiver(self) -> Component:
        """Node ``v``'s aggregation in round ``round`` (where the message lands)."""
        return Component(self._hooks.aggregation, self.v)

    @property
    def head(self) -> Component:
        """Node ``v``'s state after round ``round`` (the downstream end in a circuit)."""
        return Component(self._hooks.state_out, self.v)

    @property
    def carrier(self) -> Component:
        """The component whose patching patches exactly this message."""
        return Component(self._hooks.carrier, self.edge)


@dataclass(frozen=True, order=True)
class WeightEdge:
    """Neuron ``src`` feeding neuron ``dst`` (both ``Component`` with ``index=None``) via the
    link ``name`` of round ``round`` (a :class:`~hookgnn.nn.wiring.ResolvedLink`'s ``name``
    and ``round``; ``round=None`` for an edge drawn by hand that belongs to no link).

    ``link`` is a readable label, ``"layers.{round}:{name}"``; nothing reads it back.

    >>> e = WeightEdge(Component("layers.0.hook_aggregation", None, 2), Component("layers.0.hook_update", None, 0),
    ...                "up_a", 0)
    >>> e.src.feature, e.dst.feature, e.link
    (2, 0, 'layers.0:up_a')

    :param src: the source neuron (``index=None``).
    :param dst: the destination neuron (``index=None``).
    :param name: the link's name.
    :param round: the link's round (``None`` for an edge that belongs to no link).
    """

    src: Component
    dst: Component
    name: str
    round: int | None = None

    @property
    def link(self) -> str:
        """A readable label of the link: ``"layers.{round}:{name}"`` (``name`` without a round)."""
        return self.name if self.round is None else f"layers.{self.round}:{self.name}"


Edge = MessageEdge | WeightEdge


def state_name(t: int) -> str:
    """The hook holding the node state that enters round ``t`` of a
    :class:`~hookgnn.models.HookedGNN` (other models: ``model.state_hook(t)``).

    >>> state_name(0), state_name(3)
    ('hook_node_embed', 'layers.2.hook_update')
    """
    return "hook_node_embed" if t == 0 else f"layers.{t - 1}.hook_update"


# ------------------------------------------------------------------ enumeration
def components_of(
    shapes: dict[str, tuple[int, ...]], hooks: Iterable[str], granularity: Granularity = "row"
) -> list[Component]:
    """Every component of the given hooks at a granularity, from activation shapes.

    >>> components_of({"h": (2, 3)}, ["h"], "feature")
    [Component(hook='h', index=None, feature=0), Component(hook='h', index=None, feature=1), Component(hook='h', index=None, feature=2)]
    """
    out: list[Component] = []
    for h in hooks:
        shape = shapes[h]
        rows = range(shape[0])
        feats = range(shape[1]) if len(shape) > 1 else range(0)
        if granularity == "row":
            out += [Component(h, r) for r in rows]
        elif granularity == "feature":
            out += [Component(h, None, f) for f in feats]
        else:
            out += [Component(h, r, f) for r in rows for f in feats]
    return out


def message_edges(edge_index: Tensor, rounds: Iterable[int], model: HookedRootModule | None = None) -> list[MessageEdge]:
    """All message edges of the given rounds, round-major; with ``model``, their hook
    points come from it (:func:`message_hooks`), else ``layers.{t}`` names are assumed.

    >>> message_edges(torch.tensor([[0, 1], [1, 2]]), [0])
    [MessageEdge(round=0, edge=0, u=0, v=1), MessageEdge(round=0, edge=1, u=1, v=2)]
    """
    src, dst = edge_index.tolist()
    out = []
    for t in rounds:
        hooks = None if model is None else message_hooks(model, t)
        out += [MessageEdge(t, e, u, v, hooks) for e, (u, v) in enumerate(zip(src, dst))]
    return out


def component_mask(components: Iterable[Component], hook: str, shape: Sequence[int], device: torch.device | None = None) -> Tensor:
    """Boolean mask of the entries of ``hook``'s activation covered by ``components``.

    >>> component_mask([Component("h", 1), Component("h", None, 0)], "h", (3, 2)).int().tolist()
    [[1, 0], [1, 1], [1, 0]]
    """
    mask = torch.zeros(tuple(shape), dtype=torch.bool, device=device)
    for c in components:
        if c.hook != hook:
            continue
        rows = slice(None) if c.index is None else c.index
        if c.feature is None:
            mask[rows] = True
        else:
            mask[rows, c.feature] = True
    return mask


def weight_edges(link: ResolvedLink, d_src: int, d_dst: int, include_zero: bool = False) -> list[WeightEdge]:
    """The neuron-to-neuron edges of a link: all ``(i, j)`` with ``W[j, i] != 0`` (every
    ``(i, j)`` with ``include_zero``, as tools that enumerate zero weights do), or ``(i, i)``.

    >>> l = ResolvedLink(0, "up", "a", "b", "same", torch.tensor([[1., 0.], [0., 2.]]), "identity")
    >>> [(e.src.feature, e.dst.feature) for e in weight_edges(l, 2, 2)]
    [(0, 0), (1, 1)]
    """
    if link.weight is None:
        pairs = [(i, i) for i in range(min(d_src, d_dst))]
    else:
        where = torch.ones_like(link.weight, dtype=torch.bool) if include_zero else link.weight != 0
        pairs = sorted((int(i), int(j)) for j, i in where.nonzero().tolist())
    return [WeightEdge(Component(link.src, None, i), Component(link.dst, None, j), link.name, link.round)
            for i, j in pairs]


#: 0.1 names of this module that live in :mod:`hookgnn.nn.wiring` now.
_WIRING = frozenset({"Act", "LINKS", "Link", "RowMap", "act_fn", "links_of", "processor_links", "register_links"})


def __getattr__(name: str) -> Any:
    # 0.1 aliases, removed in 0.3: processor wiring lives in hookgnn.nn.wiring
    if name in _WIRING:
        from hookgnn.nn import wiring

        return moved_name(__name__, name, wiring)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
