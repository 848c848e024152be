"""Gradient estimators of patching effects, and the exact local engine behind AtP*.

* :mod:`~hookgnn.attribution.gradients`: attribution patching, integrated gradients, EAP, EAP-IG;
* :mod:`~hookgnn.attribution.streamed`: the same products streamed hook by hook (``keep``, ``offload``);
* :mod:`~hookgnn.attribution.interpolate`: the input interpolation both of them use;
* :mod:`~hookgnn.attribution.atp_star`: AtP*, exact local rounds then linearised;
* :mod:`~hookgnn.attribution.local`: exact local recomputation of message-passing rounds.
"""

from hookgnn.attribution.atp_star import atp_star
from hookgnn.attribution.gradients import (
    attribution_patch,
    eap,
    integrated_gradients,
    integrated_gradients_at,
    message_edge_scores,
)

__all__ = ["atp_star", "attribution_patch", "eap", "integrated_gradients", "integrated_gradients_at",
           "message_edge_scores"]
