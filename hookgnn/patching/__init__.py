"""Exact patching for hooked GNNs (one concept per module).

* :mod:`~hookgnn.patching.components`: components, message and weight edges;
* :mod:`~hookgnn.patching.results`: :class:`HookScores`, effects with named axes and their ``baseline``;
* :mod:`~hookgnn.patching.selectors`: which components to patch (:func:`messages`, :func:`nodes`,
  :func:`neurons`, :func:`hooks`);
* :mod:`~hookgnn.patching.activation`: :func:`patch`, the one exact-patching entry point (batched
  copies of the graph), and :func:`patch_each` for an arbitrary list of components;
* :mod:`~hookgnn.patching.path`: path patching (two-pass) and single messages;
* :mod:`~hookgnn.patching.budget`: how many graph copies fit in one batched run.

Metrics live in :mod:`hookgnn.metrics`, gradient estimators in :mod:`hookgnn.attribution`,
circuits in :mod:`hookgnn.circuits` and processor wiring in :mod:`hookgnn.nn.wiring`; their
0.1 spellings here (``from hookgnn.patching import eap``) still work until 0.3, with a
``DeprecationWarning`` naming the new one.
"""

import sys
from typing import Any

from hookgnn._moved import AliasPackage, moved_name, old_submodule
from hookgnn.patching.activation import activation_sweep, patch, patch_each, round_hooks
from hookgnn.patching.components import Component, MessageEdge, WeightEdge, message_edges
from hookgnn.patching.path import message_patch, message_sweep, path_patch
from hookgnn.patching.results import (
    DEFAULT_DIRECTION,
    Attribution,
    EdgeScores,
    HookScores,
    check_same_direction,
)
from hookgnn.patching.selectors import Selection, hooks, messages, neurons, nodes

__all__ = [
    "DEFAULT_DIRECTION", "Attribution", "Component", "EdgeScores", "HookScores", "MessageEdge", "WeightEdge",
    "activation_sweep", "check_same_direction", "message_edges", "message_patch", "message_sweep", "patch_each",
    "path_patch", "round_hooks",
    # 0.2
    "Selection", "hooks", "messages", "neurons", "nodes", "patch",
]

#: 0.1 names of ``hookgnn.patching`` that moved, by the package that has them now.
MOVED: dict[str, str] = {
    **dict.fromkeys(["LocalRecomputeError", "atp_star", "attribute", "attribution_patch", "eap",
                     "integrated_gradients", "integrated_gradients_at", "message_edge_scores"], "hookgnn.attribution"),
    **dict.fromkeys(["Audit", "Circuit", "Verified", "above", "audit", "evaluate", "faithfulness_curve",
                     "greedy_from_outputs", "jaccard", "prune", "select", "spearman", "top_n",
                     "verify_top", "weighted_jaccard"], "hookgnn.circuits"),
    **dict.fromkeys(["DistanceMSE", "MaskAccuracy", "OutputSum", "PointerAccuracy", "PointerKL", "PointerLogProb",
                     "faithfulness"], "hookgnn.metrics"),
    **dict.fromkeys(["Link", "links_of", "register_links"], "hookgnn.nn.wiring"),
}


def __getattr__(name: str) -> Any:
    # 0.1 aliases, removed in 0.3 (the only imports here that run up the data path)
    if name in MOVED:
        if MOVED[name] == "hookgnn.attribution":
            from hookgnn import attribution as new
        elif MOVED[name] == "hookgnn.circuits":
            from hookgnn import circuits as new
        elif MOVED[name] == "hookgnn.metrics":
            from hookgnn import metrics as new
        else:
            from hookgnn.nn import wiring as new
        return moved_name(__name__, name, new)
    module = old_submodule(__name__, name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return module


sys.modules[__name__].__class__ = type("PatchingPackage", (AliasPackage,), {"shadowed": frozenset({"atp_star"})})
