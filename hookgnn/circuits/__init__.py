"""Circuits: selection, pruning, evaluation and overlap; filter then verify; auditing estimators.

* :mod:`~hookgnn.circuits.selection`: :class:`Circuit`, :func:`select`, :func:`prune`, :func:`jaccard`, ...;
* :mod:`~hookgnn.circuits.circuit`: :func:`evaluate`, :func:`faithfulness_curve` (and re-exports the above);
* :mod:`~hookgnn.circuits.verify`: :func:`verify` and :func:`audit` against exact patching.
"""

from hookgnn.circuits.circuit import (
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
from hookgnn.circuits.verify import Audit, Verified, audit, spearman, verify, verify_top

__all__ = ["Audit", "Circuit", "Verified", "above", "audit", "evaluate", "faithfulness_curve", "greedy_from_outputs",
           "jaccard", "prune", "select", "spearman", "top_n", "verify", "verify_top", "weighted_jaccard"]
