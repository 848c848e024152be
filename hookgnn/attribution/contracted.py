"""Edge hook points scored through the links: ``hook_src`` without its activations or its gradient.

Attribution with ``keep="rows"`` or ``"features"`` returns, per hook point ``H``, the row and
feature sums of :math:`\\Delta H \\odot \\partial m / \\partial H`. A hook point on the edges
that the round's links (the rounds protocol, :mod:`hookgnn.nn.wiring`) say

1. copies a node hook point ``A`` row by row, :math:`H_e = A_{\\rho(e)}` (its one incoming
   link, a gather: :math:`\\rho` = ``src`` or ``dst``), and
2. feeds one hook point ``P`` alone, linearly, row for row,
   :math:`P_e = W H_e + (\\text{terms without } H)` (its one outgoing link: a weight, the
   identity map, the same rows)

needs neither: :math:`\\Delta H_e = \\Delta A_{\\rho(e)}` and
:math:`\\partial m / \\partial H_e = W^\\top g_e` with :math:`g = \\partial m / \\partial P`, so

.. math::

    \\mathrm{by\\_row}_e = \\sum_k (\\Delta A\\, W^\\top)_{\\rho(e) k}\\, g_{e k}, \\qquad
    \\mathrm{by\\_feature}_f = \\sum_n \\Delta A_{n f}\\, (S W)_{n f}, \\quad
    S_n = \\sum_{e : \\rho(e) = n} g_e,

from ``A``'s difference (``[N, d]``) and ``P``'s gradient, both of which the job has anyway.
``hook_src`` of a message-passing round is such a hook point (``h[src]`` read by the first
layer of the message MLP): left unhooked, the round never builds ``h[src]`` (``[E, d]``), the
source run does not cache it, and the backward makes no per-edge gradient for it
(``benchmarks/bench_block_cache.py``).

This trusts the links as the model declares them to be whole, as circuits do: a round whose
``H`` also reached the output some other way, undeclared, would get a wrong gradient here.
Every processor hookgnn ships and every wrapped PyG model is checked against the tapped
gradient (``keep="all"``) in ``tests/test_attribution_contracted.py``. Nothing is contracted
where the links are missing (no wiring, no rounds), where ``A`` or ``P`` is not itself
attributed, where the source graph's edges differ from the base graph's, or where ``P``'s
rows are not the graph's edges.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.nn.wiring import ResolvedLink, links_of
from hookgnn.ops.products import gathered_row_sums, product_sums


@dataclass(frozen=True)
class Contraction:
    """Hook point ``name`` (:math:`H`), scored from ``node``'s difference (:math:`A`) and
    ``into``'s gradient (:math:`P`): :math:`H_e = A_{\\rho(e)}`, :math:`\\rho` = ``rows``,
    and :math:`P_e = W H_e + \\dots` with ``weight`` = :math:`W` ``[d_P, d_H]``."""

    name: str
    node: str
    into: str
    rows: str
    weight: Tensor


def contractions(model: HookedRootModule, names: Sequence[str], base: Graph, src: Graph) -> dict[str, Contraction]:
    """The hook points of ``names`` that attribution can score through the links (see the module
    docstring), by name; ``{}`` where none can.

    >>> from hookgnn import Graph, HookedGNN
    >>> model = HookedGNN("mpnn", 4, node_in=1, max_steps=2)
    >>> g = Graph(x=torch.rand(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> names = [hp.name for hp in model.hook_points()]
    >>> [(c.name, c.node, c.into) for c in contractions(model, names, g, g).values()][0]
    ('layers.0.hook_src', 'hook_node_embed', 'layers.0.message_mlp.hook_pre')

    :param model: the hooked model.
    :param names: the hook points attributed.
    :param base: the base graph.
    :param src: the source graph (its edges must be ``base``'s).
    """
    wanted = set(names)
    rounds = sorted({t for n, (t, _) in model.round_places.items() if n in wanted}) if model.num_rounds else []
    if not rounds or not torch.equal(base.edge_index, src.edge_index):
        return {}
    try:
        links = links_of(model, rounds)
    except (KeyError, ValueError, NotImplementedError):  # no wiring declared, or none that holds for every round
        return {}
    into: dict[str, list[ResolvedLink]] = {}
    out_of: dict[str, list[ResolvedLink]] = {}
    for link in links:
        into.setdefault(link.dst, []).append(link)
        out_of.setdefault(link.src, []).append(link)
    axes = {hp.name: hp.axis for hp in model.hook_points(list(wanted))}
    found: dict[str, Contraction] = {}
    for name in names:
        ins, outs = into.get(name, []), out_of.get(name, [])
        if axes[name] != "edge" or len(ins) != 1 or len(outs) != 1:
            continue
        (gather,), (linear,) = ins, outs
        if not (gather.kind == "gather" and gather.act == "identity" and gather.src in wanted):
            continue
        if not (linear.weight is not None and linear.rows == "same" and linear.act == "identity"
                and linear.dst in wanted and axes.get(linear.dst) == "edge" and linear.weight.dim() == 2):
            continue
        found[name] = Contraction(name, gather.src, linear.dst, gather.rows, linear.weight)
    return found


def contracted_sums(
    c: Contraction,
    delta_node: Float[Tensor, "node d"],
    grad: Float[Tensor, "edge d_p"],
    edge_index: Int[Tensor, "2 edge"],
    to: Sequence[str],
) -> dict[str, Tensor]:
    """``by_row`` and / or ``by_feature`` (those in ``to``) of hook point ``c.name`` from its node
    hook's difference ``delta_node`` and the gradient ``grad`` at ``c.into`` (the module docstring's
    formulas). ``ValueError`` naming the hook points when the shapes do not fit the contraction.

    >>> w = torch.tensor([[1., 0.], [0., 2.], [1., 1.]])
    >>> c = Contraction("hook_src", "prev", "pre", "src", w)
    >>> da, g = torch.tensor([[1., 2.], [3., 4.]]), torch.tensor([[1., 0., 1.]])
    >>> s = contracted_sums(c, da, g, torch.tensor([[1], [0]]), ["by_row", "by_feature"])
    >>> s["by_row"].tolist(), s["by_feature"].tolist()  # dA[1] = [3, 4], W^T g = [2, 1]
    ([10.0], [6.0, 4.0])

    :param c: the contraction (:func:`contractions`).
    :param delta_node: :math:`\\Delta A` ``[N, d_H]``.
    :param grad: :math:`\\partial m / \\partial P` ``[E, d_P]``.
    :param edge_index: the graph's edges ``[2, E]``.
    :param to: the sums wanted: ``"by_row"``, ``"by_feature"``.
    """
    edges = edge_index.shape[1]
    w = c.weight.to(grad)
    if (grad.dim() != 2 or grad.shape != (edges, w.shape[0]) or delta_node.dim() != 2
            or delta_node.shape[1] != w.shape[1]):
        raise ValueError(f"cannot score {c.name} through {c.node} and {c.into}: {c.into}'s gradient is "
                         f"{tuple(grad.shape)}, {c.node}'s difference {tuple(delta_node.shape)}, the weight "
                         f"{tuple(w.shape)} and the graph has {edges} edges")
    index = edge_index[0 if c.rows == "src" else 1]
    delta = delta_node.to(grad)
    out: dict[str, Tensor] = {}
    if "by_row" in to:
        out["by_row"] = gathered_row_sums(delta @ w.T, index, grad)  # [E]
    if "by_feature" in to:
        per_node = grad.new_zeros(delta.shape[0], grad.shape[1]).index_add_(0, index, grad)  # S [N, d_P]
        out["by_feature"] = product_sums(delta, per_node @ w, overwrite=False)[1]  # [d_H]
    return out


__all__ = ["Contraction", "contracted_sums", "contractions"]
