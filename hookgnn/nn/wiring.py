"""Processor wiring: which hook feeds which inside a round, neuron to neuron (MINAR's edges).

A processor declares its wiring beside its weights: a ``links()`` method returning a list
of :class:`Link` (the :class:`Wired` protocol), found by method lookup, so a subclass
inherits it under any name. A class you cannot edit (a PyTorch Geometric layer) gets its
links with :func:`register_links` (by class, which its subclasses inherit too).

There is one way to find a model's links: :func:`links_of` asks the model
(``model.round_links(t)``, the rounds protocol), which asks its round modules
(:func:`processor_links`) and resolves their links to full hook names and weight tensors
(:class:`ResolvedLink`). Circuits turn them into neuron-to-neuron edges
(:func:`hookgnn.patching.components.weight_edges`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar, Union, runtime_checkable

import torch
from torch import Tensor, nn

from hookgnn._deprecated import warn_deprecated
from hookgnn.hooks import HookedRootModule

RowMap = Literal["same", "src", "dst", "scatter"]
#: The map of a link: ``"identity"``, ``"relu"``, or any elementwise function (traced links
#: of wrapped PyG models carry e.g. ``leaky_relu(0.2)`` as a callable).
T = TypeVar("T")
Act = Union[Literal["identity", "relu"], Callable[[Tensor], Tensor]]


def act_fn(act: Act) -> Callable[[Tensor], Tensor]:
    """The function of a link's map.

    >>> act_fn("relu")(torch.tensor([-1.0, 2.0])).tolist()
    [0.0, 2.0]
    """
    if act == "identity":
        return lambda t: t
    if act == "relu":
        return torch.relu
    return act  # type: ignore[return-value]


@dataclass(frozen=True)
class Link:
    """How one hook feeds another inside a round (MINAR's neuron-to-neuron edges).

    ``src``/``dst`` are hook names relative to the round module (``hook_src``,
    ``message_mlp.hook_post``) or ``{prev}`` (the state entering the round), ``{x}``
    (``hook_node_embed``), ``{e}`` (``hook_edge_embed``). ``rows`` says which source row
    feeds a destination row: ``same``; ``src``/``dst`` (a node row read by edge
    ``u -> v`` at ``u``/``v``); ``scatter`` (edge rows reduced onto their target node,
    feature by feature). ``weight(layer)`` gives ``W`` of shape ``[d_dst, d_src]``
    (``dst`` gets :math:`\\varphi(W a_{src} + \\dots)` with :math:`\\varphi` = ``act``),
    or ``None`` for a feature-to-same-feature map. A link with a weight *and* a
    nonlinear ``act`` names in ``pre`` the hook point holding :math:`W a_{src} + \\dots`
    (before ``act``), where circuit evaluation corrects the ablated weight edges; without
    ``pre`` such edges can be scored but not ablated (split the link in two instead).
    """

    name: str
    src: str
    dst: str
    rows: RowMap
    weight: Callable[[nn.Module], Tensor] | None = None
    act: Act = "identity"
    pre: str | None = None


@dataclass(frozen=True)
class ResolvedLink:
    """A :class:`Link` of one round, with full hook names and its weight tensor.

    ``reduce`` is the aggregation of a ``scatter`` link (``None``: the round module's
    ``aggr``); ``pre`` as in :class:`Link`, as a full hook name; ``selection``: the weight
    is a 0/1 selection (columns of a concatenation), not a learned one.

    >>> ResolvedLink(0, "up", "a", "b", "same", torch.eye(2), "identity").kind
    'linear'
    """

    round: int
    name: str
    src: str
    dst: str
    rows: RowMap
    weight: Tensor | None
    act: Act
    reduce: str | None = None
    pre: str | None = None
    selection: bool = False

    @property
    def kind(self) -> Literal["linear", "selection", "elementwise", "gather", "scatter"]:
        """What carries the link: ``"linear"`` (a learned weight: a ``Linear`` or a slice of
        one), ``"selection"`` (a concatenation), ``"elementwise"`` (identity or an
        activation, feature to same feature), ``"gather"`` (a node row read by an edge) or
        ``"scatter"`` (edge rows reduced onto nodes)."""
        if self.rows == "scatter":
            return "scatter"
        if self.weight is None:
            return "elementwise" if self.rows == "same" else "gather"
        return "selection" if self.selection else "linear"


@runtime_checkable
class Wired(Protocol):
    """A processor that declares its neuron-level wiring: ``links()`` lists the
    :class:`Link` of one round, written beside the weights they read."""

    def links(self) -> list[Link]: ...


#: One block of a concatenation fed to a linear layer: ``(link name, what it reads, how an
#: edge u -> v reads it, width)``, ``what it reads`` in the names of :class:`Link`.
InputBlock = tuple[str, str, RowMap, int]


def in_order(blocks: Sequence[InputBlock], **parts: T) -> list[T]:
    """``parts`` (by link name) in the order of ``blocks``: what a processor concatenates,
    in the order its links (:func:`column_links`) say; ``KeyError`` unless the names match.

    >>> in_order([("b", "hook_b", "same", 1), ("a", "hook_a", "same", 1)], a=1, b=2)
    [2, 1]
    """
    names = [b[0] for b in blocks]
    if sorted(names) != sorted(parts):
        raise KeyError(f"the blocks are {names}, the parts {sorted(parts)}")
    return [parts[n] for n in names]


def column_links(
    dst: str, weight: Callable[[nn.Module], Tensor], blocks: Sequence[InputBlock],
    act: Act = "identity", pre: str | None = None,
) -> list[Link]:
    """One :class:`Link` per block of a concatenation fed to one linear layer.

    ``blocks`` lists ``(link name, source, rows, width)`` in the order of the
    concatenation; block ``k`` is the columns ``off_k .. off_k + width_k`` of
    ``weight(layer)`` (:math:`W [a_1, a_2] = W_{:, 1} a_1 + W_{:, 2} a_2`). A processor
    writes the order once, in a table that both its concatenation and its ``links()`` read.

    >>> lin = nn.Linear(3, 2)
    >>> a, b = column_links("hook_out", lambda m: m.weight, [("a", "hook_a", "same", 1), ("b", "hook_b", "same", 2)])
    >>> torch.equal(b.weight(lin), lin.weight[:, 1:3]), a.src
    (True, 'hook_a')
    """
    out, start = [], 0
    for name, src, rows, width in blocks:
        cols = slice(start, start + width)
        out.append(Link(name, src, dst, rows, lambda m, cols=cols: weight(m)[:, cols], act, pre))
        start += width
    return out


#: Links registered by class *name* with the 0.1 spelling ``register_links("MinAgg", fn)``
#: (deprecated; removed in 0.3). Looked up along a module's class hierarchy.
LINKS: dict[str, Callable[[nn.Module], list[Link]]] = {}
_BY_CLASS: dict[type, Callable[[nn.Module], list[Link]]] = {}


def register_links(cls: type | str, fn: Callable[[nn.Module], list[Link]]) -> None:
    """Describe the neuron-level wiring of a module class you cannot give a ``links()``
    method (a PyTorch Geometric layer, for what tracing cannot see): ``fn(layer)`` lists
    the :class:`Link` of one round. Subclasses inherit it.

    A class *name* (the 0.1 spelling, ``register_links("GINEConv", fn)``) still works until
    0.3, with a ``DeprecationWarning``: pass the class itself, or write a ``links()`` method.

    >>> class Wired2(nn.Linear):
    ...     pass
    >>> register_links(Wired2, lambda m: [Link("w", "{prev}", "hook_out", "same", lambda m: m.weight)])
    >>> [l.name for l in declared_links(Wired2(2, 2))]
    ['w']
    """
    if isinstance(cls, str):
        warn_deprecated("register_links with a class name", "register_links(TheClass, fn) or give the class a "
                        "links() method")
        LINKS[cls] = fn
        return
    if not isinstance(cls, type):
        raise TypeError(f"register_links takes a class (or, deprecated, a class name), got {type(cls).__name__}")
    _BY_CLASS[cls] = fn


def declared_links(module: nn.Module) -> list[Link] | None:
    """The :class:`Link` s a module declares (``None``: it declares none).

    The nearest class of its hierarchy that has them wins: a ``links()`` method (the
    :class:`Wired` protocol) or a :func:`register_links` registration, so a subclass
    under any name keeps its parent's wiring.

    >>> from hookgnn.nn import MinAgg
    >>> class MyMinAgg(MinAgg):
    ...     pass
    >>> [l.name for l in declared_links(MyMinAgg(2))][:3]
    ['src', 'agg_h', 'agg_e']
    """
    for cls in type(module).__mro__:
        fn = _BY_CLASS.get(cls) or LINKS.get(cls.__name__)
        if fn is not None:
            return fn(module)
        if callable(cls.__dict__.get("links")):
            return module.links()  # type: ignore[operator]
    return None


def resolve_links(module: nn.Module, links: Iterable[Link], t: int, full: Callable[[str], str]) -> list[ResolvedLink]:
    """Round ``t``'s links with full hook names (``full`` maps a name of :class:`Link`:
    a path inside the round, or ``{prev}``, ``{x}``, ``{e}``) and weights read now from ``module``."""
    out = []
    for link in links:
        w = None if link.weight is None else link.weight(module).detach()
        out.append(ResolvedLink(t, link.name, full(link.src), full(link.dst), link.rows, w, link.act,
                                pre=None if link.pre is None else full(link.pre)))
    return out


def links_of(model: HookedRootModule, rounds: Iterable[int]) -> list[ResolvedLink]:
    """The neuron-level links of the given rounds, with full names: ``model.round_links(t)``
    for each round (the rounds protocol; a model asks its round modules, a wrapped PyG
    model traces them, :func:`hookgnn.from_pyg`).

    Raises ``KeyError`` for a round whose processor declares no wiring, ``ValueError`` for
    a :class:`~hookgnn.models.HookedGNN` with ``encode_hints=True`` (its node input differs
    per round), ``NotImplementedError`` for a model without rounds.

    >>> from hookgnn import HookedGNN
    >>> model = HookedGNN("minagg", d_hidden=2, node_in=1, edge_in=1, max_steps=2)
    >>> [(l.src, l.dst) for l in links_of(model, [1])][:2]
    [('layers.0.hook_update', 'layers.1.hook_src'), ('layers.1.hook_src', 'layers.1.hook_message_pre')]
    """
    return [link for t in rounds for link in model.round_links(t)]


def processor_links(model: HookedRootModule, t: int, x: str = "hook_node_embed",
                    e: str = "hook_edge_embed") -> list[ResolvedLink]:
    """The links round ``t``'s processor declares (:func:`declared_links`), with ``{prev}`` =
    ``model.state_hook(t)``, ``{x}`` = ``x`` and ``{e}`` = ``e``; ``KeyError`` if it declares none.

    >>> from hookgnn import HookedGNN
    >>> processor_links(HookedGNN("mpnn", d_hidden=2, node_in=1, max_steps=1), 0)[1].weight.shape
    torch.Size([2, 2])
    """
    layer = model.round_module(t)
    links = declared_links(layer)
    if links is None:
        raise KeyError(f"no neuron-level wiring for processor {type(layer).__name__} (round {t}): give its class a "
                       "links() method (hookgnn.nn.wiring.Wired) or register_links(TheClass, fn), or ask eap for "
                       "level='message' edges only")
    special = {"{prev}": model.state_hook(t), "{x}": x, "{e}": e}
    return resolve_links(layer, links, t, lambda n: special.get(n) or model.round_hook(n, t))
