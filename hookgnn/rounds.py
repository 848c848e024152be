"""The rounds protocol: where a model's message-passing rounds are, asked of the model.

Patching, attribution and circuits never parse hook names or branch on a model's class:
they ask the model (any :class:`~hookgnn.hooks.HookedRootModule`) through the methods of
:class:`Rounds`. :class:`RoundMethods` holds the shared part (everything follows from
``find_rounds``); a model with rounds overrides ``find_rounds``, ``round_module`` and
``state_hook`` (:class:`~hookgnn.models.base.LayerStack` does it once for every model whose
round ``t`` is the module ``layers.t``; a wrapped PyG model finds its rounds by tracing).

Round modules that declare how their ``forward`` arguments are indexed (``input_roles``,
``state_arg``, ``receptive_hops``: every :class:`~hookgnn.nn.HookedMessagePassing`) need
nothing else; for other libraries' layers an adapter registers how to read them
(:func:`register_round_kind`; :mod:`hookgnn.interop` registers PyTorch Geometric's).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from torch import Tensor, nn

from hookgnn.names import relative_hook_name

#: ``(input_roles, state_arg, receptive_hops)`` of a round module (see :mod:`hookgnn.attribution.local`).
Roles = tuple[dict[str, str], str, int]
#: ``layer -> Roles`` for the layers an adapter knows, ``None`` for the others.
RolesFinder = Callable[[nn.Module], "Roles | None"]
#: ``(layer, patch) -> context`` in which every message of ``layer`` reads ``patch(source states)``,
#: ``None`` for layers the adapter does not know.
SourcePatcher = Callable[[nn.Module, Callable[[Tensor], Tensor]], "AbstractContextManager[Any] | None"]

_ROLE_FINDERS: list[RolesFinder] = []
_SOURCE_PATCHERS: list[SourcePatcher] = []


class Rounds(Protocol):
    """What patching, attribution and circuits ask a model about its rounds.

    ``find_rounds()`` maps each hook point of a round to ``(round, path inside the round)``
    (``{}``: no rounds); ``round_places`` is what it found at setup; ``num_rounds`` counts
    the rounds; ``round_of(name)`` and ``counterparts(name)`` place a hook; ``round_hook(short,
    t)`` names a round's hook; ``round_module(t)`` is the module that runs round ``t``;
    ``state_hook(t)`` holds the node state entering round ``t`` and ``output_hook(t)`` what
    round ``t`` returns; ``between_rounds(t)`` maps the one to the next (``None``: unknown).
    """

    def find_rounds(self) -> dict[str, tuple[int, str]]: ...

    @property
    def round_places(self) -> dict[str, tuple[int, str]]: ...

    @property
    def num_rounds(self) -> int: ...

    def round_of(self, hook_name: str) -> int | None: ...

    def counterparts(self, hook_name: str) -> list[str]: ...

    def round_hook(self, short: str, t: int) -> str: ...

    def round_module(self, t: int) -> nn.Module: ...

    def state_hook(self, t: int) -> str: ...

    def output_hook(self, t: int) -> str: ...

    def between_rounds(self, t: int) -> Callable[[Tensor], Tensor] | None: ...


class RoundMethods:
    """The rounds protocol for a :class:`~hookgnn.hooks.HookedRootModule` (its base class).

    Patching, attribution and circuits ask the model where its rounds are through the
    methods below; they never parse hook names. A model with rounds overrides
    find_rounds, round_module and state_hook.
    """

    _places: dict[str, tuple[int, str]]
    _by_place: dict[tuple[str, int], str]

    def find_rounds(self) -> dict[str, tuple[int, str]]:
        """Hook name -> (round, its path inside the round) for every hook point of a round.

        ``{}`` here (no rounds). :class:`~hookgnn.models.HookedGNN` maps
        ``layers.3.message_mlp.hook_post`` to ``(3, "message_mlp.hook_post")``.
        """
        return {}

    @property
    def round_places(self) -> dict[str, tuple[int, str]]:
        """What :meth:`find_rounds` found at :meth:`setup`."""
        self.hook_dict  # type: ignore[attr-defined]  # noqa: B018 - runs setup once
        return self._places

    @property
    def num_rounds(self) -> int:
        """How many rounds have hook points (0 for a model without rounds)."""
        return 1 + max((t for t, _ in self.round_places.values()), default=-1)

    def round_of(self, hook_name: str) -> int | None:
        """The round a hook point belongs to (``None`` outside rounds).

        >>> from hookgnn.hooks import HookedRootModule
        >>> HookedRootModule().num_rounds
        0
        """
        self.resolve(hook_name)  # type: ignore[attr-defined]
        place = self.round_places.get(hook_name)
        return None if place is None else place[0]

    def counterparts(self, hook_name: str) -> list[str]:
        """The same hook point in every round (just ``[hook_name]`` outside rounds)."""
        self.resolve(hook_name)  # type: ignore[attr-defined]
        place = self.round_places.get(hook_name)
        if place is None:
            return [hook_name]
        return [name for name, (_, rel) in self.round_places.items() if rel == place[1]]

    def round_hook(self, short: str, t: int) -> str:
        """The full name of a round's hook point: ``"message"``, ``"hook_message"`` or
        ``"message_mlp.hook_post"`` in round ``t``; ``KeyError`` naming the rounds if absent."""
        self.hook_dict  # type: ignore[attr-defined]  # noqa: B018
        rel = relative_hook_name(short)
        name = self._by_place.get((rel, t))
        if name is None:
            have = sorted({r for (p, r) in self._by_place if p == rel})
            raise KeyError(f"no hook point {rel!r} in round {t}; it exists in rounds {have}"
                           if have else f"no hook point {rel!r} in any round of this model")
        return name

    def round_module(self, t: int) -> nn.Module:
        """The message-passing module that runs round ``t``."""
        raise NotImplementedError(f"{type(self).__name__} has no rounds (round_module is not defined)")

    def state_hook(self, t: int) -> str:
        """The hook point holding the node state that enters round ``t`` (``t = num_rounds``:
        the final state)."""
        raise NotImplementedError(f"{type(self).__name__} has no rounds (state_hook is not defined)")

    def output_hook(self, t: int) -> str:
        """The hook point holding what round ``t``'s module returns (``hook_update`` here)."""
        return self.round_hook("hook_update", t)

    def between_rounds(self, t: int) -> Callable[[Tensor], Tensor] | None:
        """The node-wise map from round ``t``'s output (:meth:`output_hook`) to the state
        entering round ``t + 1`` (:meth:`state_hook`), applied to rows of states; the
        identity when they are the same hook point, ``None`` when it is unknown (code
        between the rounds that is not node-wise). Exact local recomputation over several
        rounds (AtP*) needs it."""
        return identity if self.output_hook(t) == self.state_hook(t + 1) else None


def identity(t: Tensor) -> Tensor:
    """The identity map (of the rows of a state)."""
    return t


# ------------------------------------------------------------- round modules of other libraries
def register_round_kind(roles: RolesFinder | None = None, source_patch: SourcePatcher | None = None) -> None:
    """Say how round modules that declare no ``input_roles`` are read (an adapter such as
    :mod:`hookgnn.interop` calls this once for its library's layers).

    ``roles(layer)`` gives ``(input_roles, state_arg, receptive_hops)`` for the layers it
    knows (``None`` for the others); ``source_patch(layer, patch)`` gives a context in which
    every message of ``layer`` reads ``patch(source states)``, for layers without a
    ``hook_src`` (``None`` for layers it does not know).
    """
    if roles is not None and roles not in _ROLE_FINDERS:
        _ROLE_FINDERS.append(roles)
    if source_patch is not None and source_patch not in _SOURCE_PATCHERS:
        _SOURCE_PATCHERS.append(source_patch)


def registered_roles(layer: nn.Module) -> Roles | None:
    """What a registered adapter says about ``layer`` (:func:`register_round_kind`), else ``None``."""
    for find in _ROLE_FINDERS:
        found = find(layer)
        if found is not None:
            return found
    return None


def registered_source_patch(layer: nn.Module, patch: Callable[[Tensor], Tensor]) -> AbstractContextManager[Any] | None:
    """A registered adapter's context patching ``layer``'s message sources, else ``None``."""
    for make in _SOURCE_PATCHERS:
        context = make(layer, patch)
        if context is not None:
            return context
    return None
