"""Patching, attribution and circuits for hooked GNNs (one concept per module).

* :mod:`~hookgnn.patching.components`: components, message and weight edges, wiring;
* :mod:`~hookgnn.patching.metrics`: per-graph metrics for reasoners, faithfulness;
* :mod:`~hookgnn.patching.targets`: the one rule for metric targets (read from the clean graph);
* :mod:`~hookgnn.patching.results`: :class:`HookScores`, effects with named axes and their ``baseline``;
* :mod:`~hookgnn.patching.selectors`: which components :func:`patch` patches (``messages``, ``nodes``, ``neurons``, ``hooks``);
* :mod:`~hookgnn.patching.activation`: :func:`patch`, exact activation patching (loop and batched);
* :mod:`~hookgnn.patching.path`: path patching (two-pass) and single messages;
* :mod:`~hookgnn.patching.attribution`: :func:`attribute` (attribution patching, EAP-IG), EAP;
* :mod:`~hookgnn.patching.atp_star`: AtP*, exact local rounds then linearised (engine: :mod:`~hookgnn.patching.local`,
  its local subgraphs checked against full calls by :mod:`~hookgnn.patching.receptive`);
* :mod:`~hookgnn.patching.circuits`: circuits, selection, pruning, evaluation, overlap;
* :mod:`~hookgnn.patching.verify`: filter then verify, and auditing estimators against exact patching.
"""

from hookgnn.patching.activation import activation_sweep, patch, patch_each, round_hooks
from hookgnn.patching.atp_star import atp_star
from hookgnn.patching.attribution import (
    Attribution,
    EdgeScores,
    attribute,
    attribution_patch,
    eap,
    integrated_gradients,
    integrated_gradients_at,
    message_edge_scores,
)
from hookgnn.patching.circuits import (
    Circuit,
    above,
    evaluate,
    faithfulness_curve,
    greedy_from_outputs,
    jaccard,
    prune,
    select,
    top_n,
    weighted_jaccard,
)
from hookgnn.patching.components import Component, Link, MessageEdge, WeightEdge, links_of, message_edges, register_links
from hookgnn.patching.metrics import (
    DistanceMSE,
    MaskAccuracy,
    OutputSum,
    PointerAccuracy,
    PointerKL,
    PointerLogProb,
    faithfulness,
)
from hookgnn.patching.path import message_patch, message_sweep, path_patch
from hookgnn.patching.receptive import LocalRecomputeError
from hookgnn.patching.results import DEFAULT_DIRECTION, HookScores, check_same_direction
from hookgnn.patching.selectors import Selection, hooks, messages, neurons, nodes
from hookgnn.patching.verify import Audit, Verified, audit, spearman, verify, verify_top

__all__ = [
    "Attribution", "Audit", "Circuit", "Component", "DEFAULT_DIRECTION", "DistanceMSE", "EdgeScores",
    "HookScores", "Link", "LocalRecomputeError", "MaskAccuracy", "MessageEdge", "OutputSum", "PointerAccuracy",
    "PointerKL",
    "PointerLogProb", "Verified", "WeightEdge", "above", "activation_sweep", "atp_star", "attribution_patch",
    "audit", "check_same_direction", "eap", "evaluate", "faithfulness", "faithfulness_curve",
    "greedy_from_outputs", "integrated_gradients", "integrated_gradients_at", "jaccard", "links_of",
    "message_edge_scores", "message_edges", "message_patch", "message_sweep", "patch_each", "path_patch",
    "prune", "register_links", "round_hooks", "spearman", "top_n", "verify_top", "weighted_jaccard",
    # 0.2
    "Selection", "attribute", "hooks", "messages", "neurons", "nodes", "patch", "select", "verify",
]
