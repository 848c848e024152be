"""The metric stage: what a model's output scores, per graph of a batch.

* :mod:`~hookgnn.metrics.per_graph`: per-graph metrics for reasoners (pointer log-probability,
  accuracy, KL, distance MSE, output sums, :func:`from_loss`) and :func:`faithfulness`;
* :mod:`~hookgnn.metrics.edge_pointers`: the same for edge pointers (Floyd-Warshall's ``Pi``);
* :mod:`~hookgnn.metrics.targets`: the one rule for metric targets (read from the clean graph);
* :mod:`~hookgnn.metrics.features`: per-feature evaluation metrics (accuracy, F1, MSE) of a
  task's outputs and hints, used by :func:`hookgnn.training.evaluate_model`.
"""

from hookgnn.metrics.edge_pointers import EdgePointerAccuracy, EdgePointerLogProb
from hookgnn.metrics.features import feature_metrics, item_correct, pointer_sources, primary_metric
from hookgnn.metrics.per_graph import (
    DistanceMSE,
    MaskAccuracy,
    Metric,
    OutputSum,
    PointerAccuracy,
    PointerKL,
    PointerLogProb,
    faithfulness,
    from_loss,
)
from hookgnn.metrics.targets import clean_targets

__all__ = [
    "DistanceMSE", "EdgePointerAccuracy", "EdgePointerLogProb", "MaskAccuracy", "Metric", "OutputSum", "PointerAccuracy", "PointerKL", "PointerLogProb",
    "clean_targets", "faithfulness", "feature_metrics", "from_loss", "item_correct", "pointer_sources",
    "primary_metric",
]
