"""Model metamers: graphs a model cannot tell apart from a reference at chosen hooks.

* :func:`metamer` (:mod:`~hookgnn.metamers.optimize`): optimise graphs until their
  activations at any hooks match a reference's;
* :mod:`~hookgnn.metamers.constraints`: :class:`Free`, :class:`Box`, :class:`OneHot`
  features; :mod:`~hookgnn.metamers.relax`: :class:`Structure`, the edge-set relaxation (its aggregations: :mod:`hookgnn.ops.relaxed`);
* :mod:`~hookgnn.metamers.metrics`: activation, feature and structure distances, local
  metamer dimension, activation-induced volume change;
* :mod:`~hookgnn.metamers.report`: invariance of model variants side by side.
"""

from hookgnn.metamers.activations import Targets, capture, hook_names
from hookgnn.metamers.constraints import Box, Free, OneHot
from hookgnn.metamers.optimize import MetamerResult, metamer, verify_relaxation
from hookgnn.metamers.relax import MessageSite, Structure, find_sites
from hookgnn.metamers.starts import permute
from hookgnn.ops.relaxed import relaxed_aggregate

__all__ = [
    "Box",
    "Free",
    "MessageSite",
    "MetamerResult",
    "OneHot",
    "Structure",
    "Targets",
    "capture",
    "find_sites",
    "hook_names",
    "metamer",
    "permute",
    "relaxed_aggregate",
    "verify_relaxation",
]
