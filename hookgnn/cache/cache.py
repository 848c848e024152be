"""ActivationCache: the activations (and optionally gradients) of one run, by hook name.

Keys are hook names (``layers.2.hook_message``). The shorthand ``cache["message", 2]``
means ``layers.2.hook_message`` and ``cache["message_mlp.hook_post", -1]`` means
``layers.{last}.message_mlp.hook_post``; negative rounds count from the last round
present. Every entry knows its axis (node, edge, graph, ...), so a batched run can be
cut back into its graphs with :meth:`ActivationCache.graph`.
"""

from __future__ import annotations

import re
from collections.abc import ItemsView, Iterator, KeysView, Mapping
from typing import Union

import torch
from jaxtyping import Int
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.names import act_name, relative_hook_name

Key = Union[str, tuple[str, int]]
_ROUND = re.compile(r"^layers\.(\d+)\.")


class ActivationCache(Mapping[str, Tensor]):
    """Activations of one forward pass, with graph-aware selection.

    ``grads`` (when the run computed them) is a separate :class:`ActivationCache` of
    gradients with the same keys, kept apart from the activations.

    >>> cache = ActivationCache({"layers.0.hook_update": torch.ones(3, 2)}, {"layers.0.hook_update": "node"})
    >>> tuple(cache["layers.0.hook_update"].shape), cache.axes["layers.0.hook_update"]
    ((3, 2), 'node')

    :param acts: activations by full hook name.
    :param axes: the row axis of each activation (``"node"``, ``"edge"``, ``"graph"`` ...), by hook name.
    :param graph: the graph (batch) of the run, used to select one graph's rows; ``None`` if unknown.
    :param grads: gradients by hook name when the run computed them (kept as a separate cache), or ``None``.
    :param places: where each hook sits in the model, ``(round, site)`` by hook name, when the model says (rounds
        protocol).
    """

    def __init__(
        self,
        acts: Mapping[str, Tensor],
        axes: Mapping[str, str],
        graph: Graph | None = None,
        grads: Mapping[str, Tensor] | None = None,
        places: Mapping[str, tuple[int, str]] | None = None,
    ) -> None:
        missing = set(acts) - set(axes)
        if missing:
            raise ValueError(f"no axis given for cached activations {sorted(missing)}")
        self._acts = dict(acts)
        self.axes = {k: axes[k] for k in acts}
        self.input_graph = graph if isinstance(graph, Graph) else None
        #: hook name -> (round, path inside the round), from the model; ``None`` for a
        #: cache built by hand, which then reads rounds from ``layers.{t}.`` names.
        self.places = dict(places) if places is not None else None
        self._by_place = {(rel, t): k for k, (t, rel) in (self.places or {}).items()}
        self.grads: ActivationCache | None = (
            None if grads is None else ActivationCache(grads, {k: axes[k] for k in grads}, self.input_graph, places=places)
        )

    # ----------------------------------------------------------------- access
    @property
    def rounds(self) -> list[int]:
        """The processor rounds present in the cache, ascending.

        Taken from the model (``round_places``) for caches made by ``run_with_cache``; a
        cache built by hand without ``places`` falls back to the ``layers.{t}.`` naming.
        """
        if self.places is not None:
            return sorted({t for k, (t, _) in self.places.items() if k in self._acts})
        return sorted({int(m.group(1)) for k in self._acts if (m := _ROUND.match(k))})

    def _name(self, short: str, t: int) -> str:
        if self.places is None:
            return act_name(short, t)
        rel = relative_hook_name(short)
        return self._by_place.get((rel, t), f"<{rel} of round {t}>")

    def resolve(self, key: Key) -> str:
        """The full hook name for a key (a name, or ``(short_name, round)``)."""
        if isinstance(key, tuple):
            short, layer = key
            if layer < 0:
                rounds = self.rounds
                if not rounds:
                    raise KeyError(f"cache has no per-round activations to index {key!r} from the end")
                if layer + rounds[-1] + 1 < 0:
                    raise KeyError(f"round {layer} of {short!r} does not exist: the cache holds rounds "
                                   f"{rounds}, so negative rounds go down to -{rounds[-1] + 1}")
                layer += rounds[-1] + 1
            return self._name(short, layer)
        return key

    def __getitem__(self, key: Key) -> Tensor:
        name = self.resolve(key)
        try:
            return self._acts[name]
        except KeyError:
            import difflib

            close = difflib.get_close_matches(name, list(self._acts), n=5, cutoff=0.5)
            hint = f"; did you mean {close}?" if close else ""
            if isinstance(key, tuple):
                hint += f" (cached rounds: {self.rounds})"
            raise KeyError(f"{name!r} is not in the cache{hint}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._acts)

    def __len__(self) -> int:
        return len(self._acts)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, (str, tuple)):
            return False
        try:
            return self.resolve(key) in self._acts  # type: ignore[arg-type]
        except KeyError:
            return False

    def keys(self) -> KeysView[str]:
        """Full hook names, in the order the run reached them."""
        return self._acts.keys()

    def items(self) -> ItemsView[str, Tensor]:
        """``(hook name, activation)`` pairs."""
        return self._acts.items()

    def __repr__(self) -> str:
        grads = "" if self.grads is None else f", with gradients of {len(self.grads)}"
        return f"ActivationCache({len(self)} activations over rounds {self.rounds}{grads}): {list(self._acts)}"

    def to(self, device: torch.device | str) -> ActivationCache:
        """A copy with every activation, gradient and the input graph on ``device``."""
        return self._derive({k: v.to(device) for k, v in self._acts.items()},
                            None if self.grads is None else {k: v.to(device) for k, v in self.grads.items()},
                            None if self.input_graph is None else self.input_graph.to(device))

    def _derive(self, acts: Mapping[str, Tensor], grads: Mapping[str, Tensor] | None, graph: Graph | None) -> ActivationCache:
        return ActivationCache(acts, self.axes, graph, grads, self.places)

    # ----------------------------------------------------------------- stacks
    def stack(self, short: str) -> Tensor:
        """One tensor ``[round, ...]`` of a per-round activation over all cached rounds.

        Raises ``ValueError`` naming the rounds whose shapes differ.
        """
        names = [self._name(short, t) for t in self.rounds if self._name(short, t) in self._acts]
        if not names:
            raise KeyError(f"no cached activation is {relative_hook_name(short)!r} of a round (rounds {self.rounds})")
        shapes = {n: tuple(self._acts[n].shape) for n in names}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"cannot stack {short!r}: shapes differ across rounds: {shapes}")
        return torch.stack([self._acts[n] for n in names])

    def stack_activation(self, short: str) -> Tensor:
        """TransformerLens' name for :meth:`stack`: ``[round, ...]`` over every cached round."""
        return self.stack(short)

    # ------------------------------------------------------------- selection
    def graph(self, i: int) -> ActivationCache:
        """The activations of graph ``i`` of the batch alone.

        Node-, edge- and graph-axis entries keep the rows of graph ``i`` (in order);
        entries on other axes (triplets, weights) are dropped, since their rows are not
        owned by a single graph.
        """
        if self.input_graph is None:
            raise ValueError("this cache was not made from a Graph input, so it cannot be split by graph")
        g = self.input_graph
        if not -g.num_graphs <= i < g.num_graphs:
            raise IndexError(f"graph index {i} out of range for a batch of {g.num_graphs}")
        i %= g.num_graphs
        keep = {loc: g.owner(loc) == i for loc in ("node", "edge", "graph")}  # type: ignore[arg-type]
        pick = lambda src: {k: v[keep[self.axes[k]]] for k, v in src.items() if self.axes[k] in keep}  # noqa: E731
        return self._derive(pick(self._acts), None if self.grads is None else pick(self.grads), g.graph(i))

    def select(
        self,
        nodes: Int[Tensor, " n_selected"] | None = None,
        edges: Int[Tensor, " e_selected"] | None = None,
    ) -> ActivationCache:
        """Keep the given rows of node-axis (``nodes``) and edge-axis (``edges``) entries.

        Entries on an axis that is not selected are kept whole.
        """
        rows = {"node": nodes, "edge": edges}
        for axis, idx in rows.items():
            if idx is not None and self.input_graph is not None:
                n = self.input_graph.count(axis)  # type: ignore[arg-type]
                if idx.numel() and (int(idx.min()) < -n or int(idx.max()) >= n):
                    raise IndexError(f"{axis} index out of range for a batch with {n} {axis}s")

        def pick(src: Mapping[str, Tensor]) -> dict[str, Tensor]:
            out = {}
            for k, v in src.items():
                idx = rows.get(self.axes[k])
                out[k] = v if idx is None else v[idx]
            return out

        return self._derive(pick(self._acts), None if self.grads is None else pick(self.grads), None)
