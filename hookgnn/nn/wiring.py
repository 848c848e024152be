"""Processor wiring: which hook feeds which inside a round, neuron to neuron (MINAR's edges).

A processor's wiring is a list of :class:`Link` (declared beside its weights, by a
``links()`` method, or registered for its class with :func:`register_links`);
:func:`links_of` resolves the links of a model's rounds to full hook names and weight
tensors (:class:`ResolvedLink`), through the rounds protocol. Circuits turn them into
neuron-to-neuron edges (:func:`hookgnn.patching.components.weight_edges`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Union

import torch
from torch import Tensor, nn

from hookgnn.hooks import HookedRootModule

RowMap = Literal["same", "src", "dst", "scatter"]
#: The map of a link: ``"identity"``, ``"relu"``, or any elementwise function (traced links
#: of wrapped PyG models carry e.g. ``leaky_relu(0.2)`` as a callable).
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


def _minagg_links(layer: nn.Module) -> list[Link]:
    d = layer.agg.out_features
    return [
        Link("src", "{prev}", "hook_src", "src"),
        Link("agg_h", "hook_src", "hook_message_pre", "same", lambda m: m.agg.weight[:, :d]),
        Link("agg_e", "{e}", "hook_message_pre", "same", lambda m: m.agg.weight[:, d:]),
        Link("relu", "hook_message_pre", "hook_message", "same", None, "relu"),
        Link("min", "hook_message", "hook_aggregation", "scatter"),
        Link("up_a", "hook_aggregation", "hook_update", "same", lambda m: m.up.weight[:, :d]),
        Link("up_h", "{prev}", "hook_update", "same", lambda m: m.up.weight[:, d:]),
    ]


def _mpnn_links(layer: nn.Module) -> list[Link]:
    d = layer.message_mlp.lin_out.out_features
    w_m = lambda k: (lambda m: m.message_mlp.lin_in.weight[:, k * d:(k + 1) * d])  # noqa: E731
    w_u = lambda k: (lambda m: m.update_mlp.lin_in.weight[:, k * d:(k + 1) * d])  # noqa: E731
    return [
        Link("src", "{prev}", "hook_src", "src"),
        Link("m_x_src", "{x}", "message_mlp.hook_pre", "src", w_m(0)),
        Link("m_h_src", "hook_src", "message_mlp.hook_pre", "same", w_m(1)),
        Link("m_x_dst", "{x}", "message_mlp.hook_pre", "dst", w_m(2)),
        Link("m_h_dst", "{prev}", "message_mlp.hook_pre", "dst", w_m(3)),
        Link("m_e", "{e}", "message_mlp.hook_pre", "same", w_m(4)),
        Link("m_relu", "message_mlp.hook_pre", "message_mlp.hook_post", "same", None, "relu"),
        Link("m_out", "message_mlp.hook_post", "hook_message", "same", lambda m: m.message_mlp.lin_out.weight),
        Link("aggr", "hook_message", "hook_aggregation", "scatter"),
        Link("u_x", "{x}", "update_mlp.hook_pre", "same", w_u(0)),
        Link("u_h", "{prev}", "update_mlp.hook_pre", "same", w_u(1)),
        Link("u_a", "hook_aggregation", "update_mlp.hook_pre", "same", w_u(2)),
        Link("u_relu", "update_mlp.hook_pre", "update_mlp.hook_post", "same", None, "relu"),
        Link("u_out", "update_mlp.hook_post", "hook_update_pre", "same", lambda m: m.update_mlp.lin_out.weight),
        Link("u_relu_out", "hook_update_pre", "hook_update", "same", None, "relu"),
    ]


#: Per processor class name: the links of one round. Register others with :func:`register_links`.
LINKS: dict[str, Callable[[nn.Module], list[Link]]] = {"MinAgg": _minagg_links, "MPNN": _mpnn_links}


def register_links(cls_name: str, fn: Callable[[nn.Module], list[Link]]) -> None:
    """Describe the neuron-level wiring of a processor class (see :class:`Link`)."""
    LINKS[cls_name] = fn


def links_of(model: HookedRootModule, rounds: Iterable[int]) -> list[ResolvedLink]:
    """The neuron-level links of the given rounds, with full names.

    A model that knows its own wiring defines ``round_links(t)`` (a wrapped PyG model
    traces it, :func:`hookgnn.from_pyg`); otherwise each round's processor is looked up
    in :data:`LINKS`. That assumes no hint encoding (``{x}`` is ``hook_node_embed`` in
    every round): raises ``ValueError`` for a model with ``encode_hints=True``.

    >>> from hookgnn import HookedGNN
    >>> model = HookedGNN("minagg", d_hidden=2, node_in=1, edge_in=1, max_steps=2)
    >>> [(l.src, l.dst) for l in links_of(model, [1])][:2]
    [('layers.0.hook_update', 'layers.1.hook_src'), ('layers.1.hook_src', 'layers.1.hook_message_pre')]
    """
    own = getattr(model, "round_links", None)
    if callable(own):
        return [link for t in rounds for link in own(t)]
    if getattr(model, "encode_hints", False):
        raise ValueError("neuron-level links assume encode_hints=False (the node input of every round is "
                         "hook_node_embed); this model encodes hints")
    return [link for t in rounds for link in processor_links(model, t)]


def processor_links(model: HookedRootModule, t: int) -> list[ResolvedLink]:
    """The :data:`LINKS` of round ``t``'s processor (or what its ``links()`` method returns),
    with ``{prev}`` = ``model.state_hook(t)``, ``{x}`` = ``hook_node_embed`` and ``{e}`` = ``hook_edge_embed``."""
    layer = model.round_module(t)
    kind = type(layer).__name__
    describe = LINKS.get(kind)
    if describe is None and callable(getattr(layer, "links", None)):
        describe = lambda m: m.links()  # noqa: E731
    if describe is None:
        raise KeyError(f"no neuron-level wiring for processor {kind}; known: {sorted(LINKS)} (describe it with "
                       "register_links or a links() method, or ask eap for level='message' edges only)")
    special = {"{prev}": model.state_hook(t), "{x}": "hook_node_embed", "{e}": "hook_edge_embed"}
    full = lambda n: special.get(n) or model.round_hook(n, t)  # noqa: E731
    out = []
    for link in describe(layer):
        w = None if link.weight is None else link.weight(layer).detach()
        out.append(ResolvedLink(t, link.name, full(link.src), full(link.dst), link.rows, w, link.act,
                                pre=None if link.pre is None else full(link.pre)))
    return out
