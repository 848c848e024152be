"""Hints as causal variables: probes and interchange interventions per hint and round.

Does round ``t`` of a neural algorithmic reasoner compute what the algorithm computes at
step ``t``? :mod:`~hookgnn.causal.probes` asks whether a hint is *decodable* from the
state (linear probes with a control task and an untrained baseline);
:mod:`~hookgnn.causal.interchange` asks whether the model *uses* it the way the algorithm
does (interchange interventions against the algorithm resumed with the swapped hint,
:meth:`Task.resume <hookgnn.tasks.base.Task.resume>`), in a subspace
(:mod:`~hookgnn.causal.subspaces`) that can be learned (:mod:`~hookgnn.causal.das`).
"""

from hookgnn.causal.das import train_das
from hookgnn.causal.interchange import (
    IIAResult,
    InterchangeData,
    Intervention,
    interchange_accuracy,
    interchange_data,
    random_interventions,
    run_interventions,
    task_pairs,
)
from hookgnn.causal.outputs import OutputIIA, downstream_nodes, output_iia
from hookgnn.causal.probes import Probe, collect_states, fit_probe, probe_score, store_states, untrained_like
from hookgnn.causal.subspaces import Rotation, Subspace, directions, neurons, whole_state
from hookgnn.causal.tables import ProbeResult, probe_hints

__all__ = ["IIAResult", "InterchangeData", "Intervention", "OutputIIA", "Probe", "ProbeResult", "Rotation", "Subspace",
           "collect_states", "directions", "downstream_nodes", "fit_probe", "interchange_accuracy", "interchange_data",
           "neurons", "output_iia", "probe_hints", "probe_score", "random_interventions", "run_interventions",
           "store_states", "task_pairs", "train_das", "untrained_like", "whole_state"]
