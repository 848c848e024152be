"""Circuits: selection, pruning, evaluation and overlap; filter then verify; auditing estimators.

* :mod:`~hookgnn.circuits.selection`: :class:`Circuit`, :func:`select`, :func:`prune`, :func:`jaccard`, ...;
* :mod:`~hookgnn.circuits.circuit`: :func:`evaluate`, :func:`faithfulness_curve` (and re-exports the above);
* :mod:`~hookgnn.circuits.verify`: :func:`verify` and :func:`audit` against exact patching;
* :mod:`~hookgnn.circuits.discover` and :mod:`~hookgnn.circuits.masks`: circuit discovery that sees
  AND/OR structure: :func:`acdc` (iterative exact pruning), :func:`learn_mask` (learned gates),
  :func:`redundancy` (OR groups), returning :class:`Discovered`.
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
from hookgnn.circuits.discover import Discovered, acdc, exact_faithfulness
from hookgnn.circuits.or_groups import Redundancy, redundancy
from hookgnn.circuits.masks import learn_mask
from hookgnn.circuits.verify import Audit, Verified, audit, spearman, verify, verify_top

__all__ = ["Audit", "Circuit", "Discovered", "Redundancy", "Verified", "above", "acdc", "audit", "evaluate",
           "exact_faithfulness", "faithfulness_curve", "greedy_from_outputs", "jaccard", "learn_mask", "prune",
           "redundancy", "select", "spearman", "top_n", "verify", "verify_top", "weighted_jaccard"]
