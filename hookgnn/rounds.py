"""The rounds protocol: where a model's message-passing rounds are, asked of the model.

Patching, attribution and circuits never parse hook names or branch on a model's class:
they ask the model (any :class:`~hookgnn.hooks.HookedRootModule`) through the methods of
:class:`Rounds`. :class:`RoundMethods` holds the shared part (everything follows from
``find_rounds``); a model with rounds overrides ``find_rounds``, ``round_module`` and
``state_hook`` (:class:`~hookgnn.models.base.LayerStack` does it once for every model whose
round ``t`` is the module ``layers.t``; a wrapped PyG model finds its rounds by tracing).

Exact local recomputation (AtP*) also asks how a round module is called
(:meth:`RoundMethods.round_roles`, a :class:`RoundRoles`) and how to make its messages read
other source states (:meth:`RoundMethods.round_sources_replaced`). A hookgnn processor
declares its roles as class attributes (:func:`declared_roles`); a wrapped PyTorch Geometric
model answers for its layers in :mod:`hookgnn.interop.pyg`. The roles are only a starting
point: :mod:`hookgnn.attribution.receptive` checks them against full calls of the round.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, NamedTuple, Protocol

from torch import Tensor, nn

from hookgnn.names import relative_hook_name



class RoundRoles(NamedTuple):
    """How one round module is called, for exact local recomputation.

    ``input_roles``: argument name -> ``"node"`` (row per node), ``"edge"`` (row per
    edge), ``"edge_index"`` or ``"pass"`` (passed as it is). ``state_arg``: the argument
    holding the node state. ``receptive_hops``: the output at ``v`` is first tried from
    the in-edges of the nodes fewer than this many hops upstream of ``v``.
    ``reach_hops``: how many hops a changed state travels in one call (the number of
    message-passing steps the module takes per call).

    >>> RoundRoles({"x": "node", "edge_index": "edge_index"}, "x", 1, 1).state_arg
    'x'
    """

    input_roles: dict[str, str]
    state_arg: str
    receptive_hops: int
    reach_hops: int


def declared_roles(module: nn.Module) -> RoundRoles:
    """The :class:`RoundRoles` a module declares with the class attributes ``input_roles``,
    ``state_arg`` (default ``"h"``), ``receptive_hops`` and ``reach_hops`` (default 1).

    >>> from hookgnn.nn import MPNN
    >>> declared_roles(MPNN(2)).state_arg
    'h'
    """
    roles = getattr(module, "input_roles", None)
    if roles is None:
        raise TypeError(f"{type(module).__name__} does not declare input_roles, state_arg and receptive_hops, so its "
                        "rounds cannot be recomputed locally (see hookgnn.attribution.local); declare them as class "
                        "attributes, or use exact patching (hookgnn.patching.patch)")
    return RoundRoles(dict(roles), str(getattr(module, "state_arg", "h")), int(getattr(module, "receptive_hops", 1)),
                      int(getattr(module, "reach_hops", 1)))


class Rounds(Protocol):
    """What patching, attribution and circuits ask a model about its rounds.

    ``find_rounds()`` maps each hook point of a round to ``(round, path inside the round)``
    (``{}``: no rounds); ``round_places`` is what it found at setup; ``num_rounds`` counts
    the rounds; ``round_of(name)`` and ``counterparts(name)`` place a hook; ``round_hook(short,
    t)`` names a round's hook; ``round_module(t)`` is the module that runs round ``t``;
    ``state_hook(t)`` holds the node state entering round ``t`` and ``output_hook(t)`` what
    round ``t`` returns; ``between_rounds(t)`` maps the one to the next (``None``: unknown);
    ``round_roles(t)`` and ``round_sources_replaced(t, fn)`` serve exact local recomputation;
    ``round_links(t)`` lists round ``t``'s neuron-level links (:mod:`hookgnn.nn.wiring`);
    ``can_resume``, ``resume`` and ``output_from_state`` let batched patching skip the
    rounds a patch does not change.
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

    def round_roles(self, t: int) -> RoundRoles: ...

    def round_sources_replaced(self, t: int, fn: Callable[[Tensor], Tensor]) -> AbstractContextManager[None]: ...

    def round_links(self, t: int) -> list[Any]: ...

    def can_resume(self, **forward_kwargs: Any) -> bool: ...

    def resume(self, graph: Any, t: int, state: Tensor, before: Any, copies: int, **forward_kwargs: Any) -> Any: ...

    def output_from_state(self, graph: Any, state: Tensor, before: Any, copies: int, **forward_kwargs: Any) -> Any: ...


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

    def round_roles(self, t: int) -> RoundRoles:
        """How round ``t``'s module is called, for exact local recomputation (AtP*); here
        what the module declares (:func:`declared_roles`)."""
        return declared_roles(self.round_module(t))

    @contextmanager
    def round_sources_replaced(self, t: int, fn: Callable[[Tensor], Tensor]) -> Iterator[None]:
        """While the block runs, a direct call of ``round_module(t)`` reads ``fn(src)``
        where it reads its ``hook_src`` activation ``src`` (here: a hook on that point)."""
        with self.hooks(fwd_hooks=[(self.round_hook("hook_src", t), lambda act, hook: fn(act))]):  # type: ignore[attr-defined]
            yield


    def round_links(self, t: int) -> list[Any]:
        """Round ``t``'s neuron-level links, as :class:`~hookgnn.nn.wiring.ResolvedLink` s
        (what :func:`~hookgnn.nn.wiring.links_of` returns); a model with rounds answers by
        asking its round modules (:func:`~hookgnn.nn.wiring.processor_links`)."""
        raise NotImplementedError(f"{type(self).__name__} has no neuron-level links (round_links is not defined)")


    def can_resume(self, **forward_kwargs: Any) -> bool:
        """Whether :meth:`resume` can skip the rounds before a patch in a forward with these
        keywords (``False`` here: patching runs every round)."""
        return False

    def resume(self, graph: Any, t: int, state: Tensor, before: Any, copies: int, **forward_kwargs: Any) -> Any:
        """The output of a forward on ``graph`` (``copies`` copies of the graph ``before``
        was the output of, in one batch) that skips rounds ``0 .. t-1``: ``state`` [N, d]
        (every copy's rows) enters round ``t``, and what the skipped rounds output is
        taken from ``before`` (``t >= 1``; only where :meth:`can_resume` says so)."""
        raise NotImplementedError(f"{type(self).__name__} cannot resume a run at a round (see can_resume)")

    def output_from_state(self, graph: Any, state: Tensor, before: Any, copies: int, **forward_kwargs: Any) -> Any:
        """The output of a forward on ``graph`` (``copies`` copies of the graph ``before``
        was the output of) whose last round left ``state`` [N, d] (what its
        :meth:`output_hook` holds). Here: the whole forward with that hook point's value
        replaced by ``state`` (exact; a model that can decode a state directly overrides it)."""
        last = self.output_hook(self.num_rounds - 1)
        with self.hooks(fwd_hooks=[(last, lambda act, hook: state.to(act))]):  # type: ignore[attr-defined]
            return self(graph, **forward_kwargs)  # type: ignore[operator]


def identity(t: Tensor) -> Tensor:
    """The identity map (of the rows of a state)."""
    return t
