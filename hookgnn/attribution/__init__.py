"""Gradient estimators of patching effects, and the exact local engine behind AtP*.

* :mod:`~hookgnn.attribution.gradients`: :func:`attribute` (attribution patching at ``ig_steps=0``,
  EAP-IG above);
* :mod:`~hookgnn.attribution.edges`: :func:`eap` on computational edges, its sums streamed over graphs and
  steps by :mod:`~hookgnn.attribution.edge_sums`;
* :mod:`~hookgnn.attribution.streamed`: the same products streamed hook by hook (``keep``, ``offload``);
* :mod:`~hookgnn.attribution.checkpointed`: with ``offload``, every round checkpointed (one round's autograd
  graph at a time);
* :mod:`~hookgnn.attribution.interpolate`: the input interpolation both of them use;
* :mod:`~hookgnn.attribution.atp_star`: AtP*, exact local rounds then linearised;
* :mod:`~hookgnn.attribution.local`: exact local recomputation of message-passing rounds, its local
  subgraphs checked against full calls of the round by :mod:`~hookgnn.attribution.receptive`.
"""

from hookgnn.attribution.atp_star import atp_star
from hookgnn.attribution.edges import eap, message_edge_scores
from hookgnn.attribution.gradients import attribute, attribution_patch, integrated_gradients, integrated_gradients_at
from hookgnn.attribution.receptive import LocalRecomputeError
from hookgnn.patching.results import Attribution, EdgeScores

__all__ = ["Attribution", "EdgeScores", "LocalRecomputeError", "atp_star", "attribute", "attribution_patch", "eap",
           "integrated_gradients", "integrated_gradients_at", "message_edge_scores"]
