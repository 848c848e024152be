"""Which components :func:`~hookgnn.patching.patch` patches: selectors built from the rounds protocol.

A selector returns a :class:`Selection`: hook points, one per row of the result, and
whether a component is a row of the activation (a node or an edge, ``over="row"``) or a
column (a neuron at every row, ``over="feature"``). Every selector finds its hook points
through the model's rounds protocol (``model.round_hook(site, t)``, ``model.num_rounds``),
so the same call works on a :class:`~hookgnn.models.HookedGNN`, a ``from_layers`` stack and a
wrapped PyG model; none parses a hook name.

=====================================  ==============================================  =====================
selector                               components                                      result axes
=====================================  ==============================================  =====================
``messages(model, rounds)``            single messages: round ``t``, edge ``e``         ``("round", "edge")``
``nodes(model, site, rounds)``         one node's row at ``site`` in round ``t``        ``("round", "node")``
``neurons(model, site, rounds)``       one feature at every row at ``site``             ``("round", "feature")``
``hooks(model, names, over=...)``      rows (or features) of any hook points            as the hooks say
=====================================  ==============================================  =====================

A single message ``(t, u -> v)`` is row ``e`` of round ``t``'s ``hook_src`` (the state of ``u``
as read by edge ``e``): patching it changes that message and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from hookgnn.hooks import HookedRootModule
from hookgnn.patching.components import check_carriers

Over = Literal["row", "feature"]


@dataclass(frozen=True)
class Selection:
    """Hook points to patch, one per row of the result, and what one component is.

    ``over="row"``: a component is one row of the activation (a node or an edge, as the
    hook's axis says); ``over="feature"``: one column (a neuron, at every row).

    >>> Selection(("layers.0.hook_update",), "row").over
    'row'
    """

    hooks: tuple[str, ...]
    over: Over = "row"

    def __post_init__(self) -> None:
        if not self.hooks:
            raise ValueError("a selection needs at least one hook point")
        if self.over not in ("row", "feature"):
            raise ValueError(f"over must be 'row' or 'feature', got {self.over!r}")


def _rounds(model: HookedRootModule, rounds: Sequence[int] | None) -> list[int]:
    rounds = list(range(model.num_rounds)) if rounds is None else [int(t) for t in rounds]
    if not rounds:
        raise ValueError(f"no rounds to select: the model has {model.num_rounds} rounds and rounds={rounds}")
    return rounds


def _at(model: HookedRootModule, site: str, rounds: Sequence[int] | None) -> tuple[str, ...]:
    return tuple(model.round_hook(site, t) for t in _rounds(model, rounds))


def messages(model: HookedRootModule, rounds: Sequence[int] | None = None) -> Selection:
    """Every single message of the chosen rounds (default: all): rows of each round's ``hook_src``.

    Raises ``ValueError`` where a round's ``hook_src`` is not one row per graph edge (a layer
    with its own edge list, see :func:`~hookgnn.patching.components.check_carriers`).

    >>> from hookgnn import HookedGNN
    >>> messages(HookedGNN("mpnn", d_hidden=4, node_in=1, max_steps=2)).hooks
    ('layers.0.hook_src', 'layers.1.hook_src')

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param rounds: the rounds to select (default: every round).
    """
    names = _at(model, "src", rounds)
    check_carriers(model, names)
    return Selection(names, "row")


def nodes(model: HookedRootModule, site: str = "update", rounds: Sequence[int] | None = None) -> Selection:
    """Every node's row at a per-round hook point (``"update"``, ``"aggregation"``, ...).

    Raises ``ValueError`` when the site's rows are not nodes (use :func:`hooks` for those).

    >>> from hookgnn import HookedGNN
    >>> nodes(HookedGNN("mpnn", d_hidden=4, node_in=1, max_steps=2), rounds=[1]).hooks
    ('layers.1.hook_update',)

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param site: the per-round site whose rows are nodes: ``"update"`` (default), ``"aggregation"`` ...
    :param rounds: the rounds to select (default: every round).
    """
    names = _at(model, site, rounds)
    axes = {model.hook_dict[n].axis for n in names}
    if axes != {"node"}:
        raise ValueError(f"nodes(model, {site!r}) selects node rows, but the rows of {names[0]} are "
                         f"{sorted(axes)}; use messages(model) or hooks(model, names) for other rows")
    return Selection(names, "row")


def neurons(model: HookedRootModule, site: str = "update", rounds: Sequence[int] | None = None) -> Selection:
    """Every feature (neuron, at every row) of a per-round hook point.

    >>> from hookgnn import HookedGNN
    >>> neurons(HookedGNN("mpnn", d_hidden=4, node_in=1, max_steps=2), "aggregation").over
    'feature'

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param site: the per-round site (``"update"`` by default).
    :param rounds: the rounds to select (default: every round).
    """
    return Selection(_at(model, site, rounds), "feature")


def hooks(model: HookedRootModule, names: Sequence[str], over: Over = "row") -> Selection:
    """Any hook points by full name (checked against the model), one row of the result each.

    >>> from hookgnn import HookedGNN
    >>> hooks(HookedGNN("mpnn", d_hidden=4, node_in=1, max_steps=2), ["layers.1.hook_message"]).hooks
    ('layers.1.hook_message',)

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param names: full hook names, checked against the model; one row of the result each.
    :param over: ``"row"`` (a component is a row: a node, an edge) or ``"feature"`` (a neuron at every row).
    """
    if isinstance(names, str):
        raise TypeError(f"hooks(model, names) takes a list of hook names, got the string {names!r}; "
                        f"write hooks(model, [{names!r}])")
    for name in names:
        model.resolve(name)
    return Selection(tuple(names), over)
