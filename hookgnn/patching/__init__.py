"""Patching, attribution and circuits for hooked GNNs (one concept per module).

* :mod:`~hookgnn.patching.components`: components, message and weight edges, wiring;
* :mod:`~hookgnn.patching.metrics`: per-graph metrics for reasoners, faithfulness;
* :mod:`~hookgnn.patching.results`: :class:`HookScores`, scores with named axes;
* :mod:`~hookgnn.patching.activation`: activation patching sweeps (loop and batched);
* :mod:`~hookgnn.patching.path`: path patching (two-pass) and single messages;
* :mod:`~hookgnn.patching.attribution`: attribution patching, EAP, EAP-IG;
* :mod:`~hookgnn.patching.circuits`: circuits, selection, pruning, evaluation, overlap.
"""

from hookgnn.patching.activation import activation_sweep, round_hooks
from hookgnn.patching.attribution import (
    Attribution,
    EdgeScores,
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
from hookgnn.patching.results import DEFAULT_DIRECTION, HookScores, check_same_direction

__all__ = [
    "DEFAULT_DIRECTION", "Attribution", "Circuit", "Component", "DistanceMSE", "EdgeScores", "HookScores", "Link", "MaskAccuracy",
    "MessageEdge", "OutputSum", "PointerAccuracy", "PointerKL", "PointerLogProb", "WeightEdge", "above",
    "activation_sweep", "attribution_patch", "check_same_direction", "eap", "evaluate", "faithfulness", "faithfulness_curve",
    "greedy_from_outputs", "integrated_gradients", "integrated_gradients_at", "jaccard", "links_of",
    "message_edge_scores", "message_edges", "message_patch", "message_sweep", "path_patch", "prune",
    "register_links", "round_hooks", "top_n", "weighted_jaccard",
]
