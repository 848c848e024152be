"""Circuits: selection, pruning, evaluation and overlap; filter then verify; auditing estimators.

* :mod:`~hookgnn.circuits.circuit`: :class:`Circuit`, :func:`top_n`, :func:`prune`, :func:`evaluate`, ...;
* :mod:`~hookgnn.circuits.verify`: :func:`verify_top` and :func:`audit` against exact patching.
"""

from hookgnn.circuits.circuit import (
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
from hookgnn.circuits.verify import Audit, Verified, audit, spearman, verify_top

__all__ = ["Audit", "Circuit", "Verified", "above", "audit", "evaluate", "faithfulness_curve", "greedy_from_outputs",
           "jaccard", "prune", "spearman", "top_n", "verify_top", "weighted_jaccard"]
