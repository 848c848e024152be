"""EAP and EAP-IG on computational edges: single messages and neuron-to-neuron weight edges.

With a base run (``b``) and a source run (``s``) (``"denoising"``: base = corrupted, source =
clean) and :math:`\\bar g` the gradient of the metric at the base (EAP) or averaged over the
``ig_steps`` points of the straight path between the inputs (EAP-IG,
:func:`~hookgnn.attribution.streamed.ig_alphas`), a message edge ``(t, e)`` scores the row
:math:`\\sum_f \\Delta a_{e f}\\, \\bar g_{e f}` of round ``t``'s ``hook_src`` and a weight edge
:math:`i \\to j` of a link :math:`\\sum_r \\Delta a_{\\rho(r), i} W_{ji}\\, \\varphi'_{r,j}\\, \\bar g_{r,j}`
(:mod:`hookgnn.patching.components`). Over a batch of graphs the metric is the mean over them, so
each score is the mean of the graphs' own scores. The sums are streamed graph chunk by graph chunk
and step by step (:mod:`hookgnn.attribution.edge_sums`): memory is flat in the number of graphs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor

from hookgnn.attribution.edge_sums import ROWS_PER_FORWARD, link_sums
from hookgnn.attribution.streamed import ig_alphas
from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.metrics.per_graph import Metric
from hookgnn.nn.wiring import ResolvedLink, links_of
from hookgnn.ops.threads import threads_by_workload
from hookgnn.patching.activation import base_and_source, check_same_structure
from hookgnn.patching.components import Edge, MessageEdge, check_carriers, message_edges, weight_edges
from hookgnn.patching.results import DEFAULT_DIRECTION, Direction, EdgeScores, HookScores

EdgeLevel = Literal["message", "weight", "all"]


@threads_by_workload
def eap(
    model: HookedRootModule,
    clean: Graph,
    corrupted: Graph,
    metric: Metric,
    ig_steps: int = 0,
    direction: Direction = DEFAULT_DIRECTION,
    level: EdgeLevel = "all",
    zero_weights: bool = False,
    link_filter: Callable[[ResolvedLink], bool] | None = None,
    rows_per_forward: int = ROWS_PER_FORWARD,
    **forward_kwargs: Any,
) -> EdgeScores:
    """EAP (``ig_steps=0``) or EAP-IG scores of every message edge and weight edge.

    ``level``: ``"message"`` (single messages only; any processor), ``"weight"``
    (neuron-to-neuron weight edges; needs the processor's wiring, its ``links()``:
    :mod:`hookgnn.nn.wiring`) or ``"all"``.

    Message edge ``(t, e)``: the row-sum of ``layers.t.hook_src``'s attribution.
    Weight edge ``i -> j`` of a link (see :class:`~hookgnn.nn.wiring.Link`):
    :math:`W_{ji} \\sum_r \\Delta a_{\\rho(r), i}\\, \\varphi'_{r,j}\\, \\bar g_{r,j}`
    (``rho`` maps destination rows to source rows; for a min/max ``scatter`` link the
    gradient at the message already selects the winning edge, so the score is
    :math:`\\sum_e \\Delta m_{e,i} \\bar g_{e,i}`). An elementwise link through another
    activation :math:`\\varphi` uses :math:`\\overline{\\varphi'(a_{src}) g_{dst}}`; a weight link
    followed by an activation, the gradient at its ``pre`` hook. ``zero_weights`` also
    scores the zero entries of every weight (as tools that enumerate them do).
    ``link_filter`` keeps the links it returns ``True`` for (see
    :attr:`~hookgnn.patching.components.ResolvedLink.kind`): ``lambda l: l.kind == "linear"``
    scores learned weight entries only (MINAR's edges), without the identity, activation,
    gather and scatter links between them. Over a batch of graphs each score is the mean of
    the graphs' scores, in the dtype of the model's activations (float64 for a float64 model, as
    :func:`~hookgnn.attribution.attribute` returns); the graphs are streamed in chunks whose ``ig_steps`` copies hold about
    ``rows_per_forward`` nodes + edges (:mod:`hookgnn.attribution.edge_sums`; a speed and memory
    knob only). Raises ``ValueError`` if ``ig_steps < 0`` or ``rows_per_forward < 1``, and for
    message edges where a round's ``hook_src`` is not one row per graph edge (a layer with its
    own edge list, :func:`~hookgnn.patching.components.check_carriers`).

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.metrics.per_graph import OutputSum
    >>> from hookgnn.spec import FeatureSpec
    >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=2)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> scores = eap(model, g, g.replace(x=torch.randn(3, 1)), OutputSum("d"), level="message")
    >>> len(scores.edges)  # 2 rounds x 2 edges
    4

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param clean: the clean graph or batch (:class:`~hookgnn.graph.Graph`); the metric reads its targets.
    :param corrupted: the corrupted graph or batch: the same nodes and edges as ``clean`` (activations are swapped
        row for row).
    :param metric: ``metric(output, graph)`` -> one value per graph (:mod:`hookgnn.metrics`), averaged over the
        batch.
    :param ig_steps: 0: EAP; ``K > 0``: EAP-IG with ``K`` interpolation steps.
    :param direction: ``"denoising"`` (clean values patched into the corrupted run, the default) or ``"noising"``
        (corrupted values into the clean run).
    :param level: ``"message"``, ``"weight"`` or ``"all"`` (both).
    :param zero_weights: also score the zero entries of every weight.
    :param link_filter: keep only the links it returns ``True`` for (default: every link).
    :param rows_per_forward: about how many nodes + edges one chunk of copies holds (speed and memory only).
    :param forward_kwargs: keywords for every forward of the model, e.g. ``steps=8``.
    """
    if level not in ("message", "weight", "all"):
        raise ValueError(f"level must be 'message', 'weight' or 'all', got {level!r}")
    alphas = ig_alphas(ig_steps)
    rounds = list(range(forward_kwargs.get("steps") or model.num_rounds))
    links = [] if level == "message" else links_of(model, rounds)
    if link_filter is not None:
        links = [link for link in links if link_filter(link)]
    carriers = [model.round_hook("hook_src", t) for t in rounds] if level != "weight" else []
    check_carriers(model, carriers)
    check_same_structure(clean, corrupted)
    base, src = base_and_source(clean, corrupted, direction)
    sums = link_sums(model, base, src, clean, metric, links, carriers, alphas, forward_kwargs, rows_per_forward)
    edges: list[Edge] = []
    scores: list[Tensor] = []
    if level != "weight":
        edges += message_edges(clean.edge_index, rounds, model)
        scores.append(torch.stack([sums.rows[c] for c in carriers]).flatten())
    for link, v in zip(links, sums.links):
        if link.weight is None or link.rows == "scatter":
            mat = torch.diag(v)
            d_src = d_dst = v.shape[0]
        else:
            mat = v * link.weight.T.to(v)
            d_src, d_dst = v.shape
        new = weight_edges(link, d_src, d_dst, include_zero=zero_weights)
        edges += new
        pairs = torch.tensor([[e.src.feature, e.dst.feature] for e in new], dtype=torch.long).reshape(-1, 2)
        scores.append(mat[pairs[:, 0], pairs[:, 1]].detach().cpu())
    empty = torch.zeros(0, dtype=clean.x.dtype)
    return EdgeScores(edges, torch.cat(scores) if scores else empty, sums.baseline, direction)


def message_edge_scores(scores: EdgeScores) -> HookScores:
    """The message-edge part of EAP scores as ``[round, edge]`` (estimated effects, with the same ``baseline``)."""
    msgs = [(e, s) for e, s in zip(scores.edges, scores.scores.tolist()) if isinstance(e, MessageEdge)]
    carriers = {e.round: e.carrier.hook for e, _ in msgs}
    rounds = sorted(carriers)
    width = max(e.edge for e, _ in msgs) + 1
    table = torch.zeros(len(rounds), width, dtype=scores.scores.dtype)
    for e, s in msgs:
        table[rounds.index(e.round), e.edge] = s
    return HookScores(table, tuple(carriers[t] for t in rounds), ("round", "edge"), scores.baseline, scores.direction)
