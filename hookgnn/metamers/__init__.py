"""Model metamers: graphs a model cannot tell apart from a reference at chosen hooks.

* :func:`metamer` (:mod:`~hookgnn.metamers.optimize`): optimise graphs until their
  activations at any hooks match a reference's;
* :mod:`~hookgnn.metamers.constraints`: :class:`Free`, :class:`Box`, :class:`OneHot`
  features; :mod:`~hookgnn.metamers.relax`: :class:`EdgeSpace`, the edge-set relaxation (0.1: ``Structure``; its aggregations: :mod:`hookgnn.ops.relaxed`);
* :mod:`~hookgnn.metamers.metrics`: activation, feature and structure distances, local
  metamer dimension, activation-induced volume change;
* :mod:`~hookgnn.metamers.report`: invariance of model variants side by side.
"""

from hookgnn.metamers.activations import Targets, capture, hook_names
from hookgnn.metamers.constraints import Box, Free, OneHot
from hookgnn.metamers.optimize import MetamerResult, metamer, verify_relaxation
from hookgnn._deprecated import deprecated_names
from hookgnn.metamers.relax import EdgeSpace, MessageSite, find_sites
from hookgnn.metamers.starts import permute
from hookgnn.ops.relaxed import relaxed_aggregate

__all__ = [
    "Box",
    "EdgeSpace",
    "Free",
    "MessageSite",
    "MetamerResult",
    "OneHot",
    "Targets",
    "capture",
    "find_sites",
    "hook_names",
    "metamer",
    "permute",
    "relaxed_aggregate",
    "verify_relaxation",
]

#: 0.1's ``Structure`` (renamed: interop has a class of that name too); warns on access.
__getattr__ = deprecated_names("hookgnn.metamers", {"Structure": (lambda: EdgeSpace, "hookgnn.metamers.EdgeSpace")})
