"""Reading hook activations through hooks only, and comparing them graph by graph.

Everything the metamer code knows about a model is its hook points: a forward callable
``graph -> output`` runs inside ``model.hooks(...)`` and the activations are read where
they are made. This works for any :class:`~hookgnn.hooks.HookedRootModule` whose
forward takes a :class:`~hookgnn.graph.Graph`.

The relative activation distance of a graph :math:`G'` to the reference :math:`G` at
hook :math:`k` is

.. math::

    D_k(G', G) = \\frac{\\lVert h_k(G') - h_k(G) \\rVert^2}{\\lVert h_k(G) \\rVert^2}

with rows matched one to one (node ``i`` of :math:`G'` to node ``i`` of :math:`G`, edge
``e`` to edge ``e``, graph to graph). In a batch of metamers it is computed for every
graph of the batch against the same reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Union

import torch
from jaxtyping import Float
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule, HookPoint, HookSpec

Forward = Callable[[Graph], Any]
HookNames = Union[str, Sequence[str], Callable[[str], bool]]
#: Axes whose rows can be matched between a metamer and its reference.
COMPARABLE = ("node", "edge", "graph")


def hook_names(model: HookedRootModule, hooks: HookNames) -> list[str]:
    """The hook names selected by a name, a list of names or a predicate; checks they exist.

    >>> from hookgnn import HookedGNN
    >>> hook_names(HookedGNN("mpnn", 4, node_in=1, max_steps=2), lambda n: n.endswith("1.hook_update"))
    ['layers.1.hook_update']
    """
    if not isinstance(model, HookedRootModule):
        raise TypeError(f"model must be a HookedRootModule, got {type(model).__name__}")
    if isinstance(hooks, str) or callable(hooks):
        names = [hp.name for hp in model.resolve(hooks)]
    else:
        names = [hp.name for name in hooks for hp in model.resolve(name)]
    if not names:
        raise ValueError(f"hooks {hooks!r} select no hook point of the model")
    if len(set(names)) != len(names):
        raise ValueError(f"hooks {names} name a hook point more than once")
    return names


class _AllCaptured(BaseException):
    """Ends a forward once every wanted activation is read (not an ``Exception``, so a
    forward's own ``except Exception`` cannot swallow it)."""


def capture(
    model: HookedRootModule,
    forward: Forward,
    graph: Graph,
    hooks: Sequence[str],
    extra: Sequence[HookSpec] = (),
    stop_early: bool = False,
) -> dict[str, Tensor]:
    """Run ``forward(graph)`` and return the activations at ``hooks`` (gradients flow).

    ``extra`` hooks are attached first (so ``hooks`` see what they make). Every hook
    must fire exactly once; all hooks are removed when this returns or raises. With
    ``stop_early`` the forward is abandoned as soon as every hook has fired (later
    rounds and decoders are not computed, and a second firing goes unchecked).

    >>> from hookgnn import HookedGNN
    >>> model = HookedGNN("mpnn", 4, node_in=1, max_steps=2)
    >>> g = Graph(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> capture(model, model, g, ["layers.1.hook_message"])["layers.1.hook_message"].shape
    torch.Size([2, 4])
    """
    store: dict[str, Tensor] = {}
    fired: dict[str, int] = dict.fromkeys(hooks, 0)

    def save(t: Tensor, hook: HookPoint) -> None:
        fired[hook.name] += 1
        store[hook.name] = t
        if stop_early and len(store) == len(fired):
            raise _AllCaptured

    try:
        with model.hooks(fwd_hooks=list(extra) + [(h, save) for h in hooks]):
            forward(graph)
    except _AllCaptured:
        pass
    bad = {h: n for h, n in fired.items() if n != 1}
    if bad:
        h, n = next(iter(bad.items()))
        why = "never fired: does the forward run that round?" if n == 0 else f"fired {n} times in one forward"
        raise ValueError(f"hook {h!r} {why} (metamers compare one activation per hook and forward)")
    return store


def rows_owner(graph: Graph, axis: str) -> Tensor:
    """The graph of every row of an activation on ``axis`` (node, edge or graph)."""
    if axis not in COMPARABLE:
        raise ValueError(f"activations on the {axis!r} axis cannot be matched row by row; "
                         f"use a hook on one of {COMPARABLE}")
    return graph.owner(axis)  # type: ignore[arg-type]


def per_graph_sq(diff: Tensor, owner: Tensor, num_graphs: int) -> Float[Tensor, " graph"]:
    """:math:`\\sum_{r : owner_r = j} \\lVert diff_r \\rVert^2` for every graph ``j``."""
    sq = diff.pow(2).reshape(diff.shape[0], -1).sum(1)
    return sq.new_zeros(num_graphs).index_add(0, owner, sq)


@dataclass
class Targets:
    """The reference activations at some hooks, ready to compare batches against.

    ``acts[k]`` is the reference's activation at hook ``k``, ``axes[k]`` its axis and
    ``norms[k]`` :math:`\\lVert h_k(G) \\rVert^2` (never 0: checked at construction).
    """

    acts: dict[str, Tensor]
    axes: dict[str, str]
    norms: dict[str, Tensor]

    @classmethod
    def of(cls, model: HookedRootModule, forward: Forward, reference: Graph, hooks: Sequence[str]) -> Targets:
        """Run the reference once and check every hook can be compared.

        >>> from hookgnn import HookedGNN
        >>> _ = torch.manual_seed(0); model = HookedGNN("mpnn", 4, node_in=1, max_steps=2)
        >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
        >>> t = Targets.of(model, model, g, ["layers.1.hook_update"])
        >>> t.distances(capture(model, model, g, t.hooks), g)["layers.1.hook_update"].tolist()
        [0.0]
        """
        with torch.no_grad():
            acts = {k: v.detach() for k, v in capture(model, forward, reference, hooks).items()}
        axes = {k: model.hook_dict[k].axis for k in hooks}
        norms = {}
        for k in hooks:
            owner = rows_owner(reference, axes[k])
            if acts[k].shape[0] != owner.shape[0]:
                raise ValueError(f"hook {k!r} has axis {axes[k]!r} but its activation has {acts[k].shape[0]} rows "
                                 f"for {owner.shape[0]} {axes[k]}s of the reference")
            norms[k] = acts[k].pow(2).sum()
            if not bool(norms[k] > 0):
                raise ValueError(f"the reference's activation at {k!r} is all zeros, so the relative distance "
                                 "||h' - h||^2 / ||h||^2 is undefined there; pick another hook")
            if not bool(torch.isfinite(norms[k])):
                raise ValueError(f"the reference's activation at {k!r} is not finite")
        return cls(acts, axes, norms)

    @property
    def hooks(self) -> list[str]:
        return list(self.acts)

    def distances(self, acts: dict[str, Tensor], graph: Graph) -> dict[str, Float[Tensor, " graph"]]:
        """:math:`D_k` of every graph of ``graph`` (each the reference's size) at every hook."""
        out = {}
        for k, ref in self.acts.items():
            owner = rows_owner(graph, self.axes[k])
            a = acts[k]
            reps = graph.num_graphs
            counts = torch.bincount(owner, minlength=reps)
            if a.shape[1:] != ref.shape[1:] or a.shape[0] != owner.shape[0] or bool((counts != ref.shape[0]).any()):
                raise ValueError(f"hook {k!r}: the batch has activation {tuple(a.shape)} with {counts.tolist()} "
                                 f"{self.axes[k]}s per graph, but each graph must match the reference's "
                                 f"{tuple(ref.shape)} row for row")
            target = ref.repeat(reps, *([1] * (ref.dim() - 1)))
            out[k] = per_graph_sq(a - target, owner, reps) / self.norms[k]
        return out
