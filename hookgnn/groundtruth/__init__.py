"""Ground truths for circuit discovery: hand-set networks whose circuit is known by construction.

Each construction is a :class:`~hookgnn.groundtruth.base.GroundTruth` (model, pair sampler, metric,
known circuit at message and at neuron level), built by one function in its own module:

=========================  ==========================================  =============  ==========
name                       construction                                aggregation    structure
=========================  ==========================================  =============  ==========
``minplus_bellman_ford``   min-plus Bellman-Ford (Nerem et al.)         min (MinAgg)   chain
``or_reachability``        BFS with two redundant paths                 max (MPNN)     or
``and_conjunction``        a gate that needs two paths together         sum (MPNN)     and
=========================  ==========================================  =============  ==========

>>> from hookgnn.groundtruth import GROUND_TRUTHS, ground_truth
>>> sorted(GROUND_TRUTHS)
['and_conjunction', 'minplus_bellman_ford', 'or_reachability']
>>> ground_truth("or_reachability").structure
'or'
"""

from collections.abc import Callable

from hookgnn.groundtruth.base import GroundTruth, Pair, QueryValue
from hookgnn.groundtruth.bellman_ford import minplus_bellman_ford
from hookgnn.groundtruth.conjunction import and_conjunction
from hookgnn.groundtruth.reachability import or_reachability

GROUND_TRUTHS: dict[str, Callable[[], GroundTruth]] = {
    "minplus_bellman_ford": minplus_bellman_ford,
    "or_reachability": or_reachability,
    "and_conjunction": and_conjunction,
}
"""Every ground truth by name: a function that builds it (a fresh model each call).

>>> sorted(GROUND_TRUTHS)
['and_conjunction', 'minplus_bellman_ford', 'or_reachability']
>>> GROUND_TRUTHS["and_conjunction"]().structure
'and'
"""


def ground_truth(name: str) -> GroundTruth:
    """The ground truth ``name`` of :data:`GROUND_TRUTHS`, freshly built; ``KeyError`` lists the names.

    >>> ground_truth("and_conjunction").rounds
    2

    :param name: a key of :data:`GROUND_TRUTHS`.
    """
    if name not in GROUND_TRUTHS:
        raise KeyError(f"no ground truth {name!r}; the ground truths are {sorted(GROUND_TRUTHS)}")
    return GROUND_TRUTHS[name]()


__all__ = ["GROUND_TRUTHS", "GroundTruth", "Pair", "QueryValue", "and_conjunction", "ground_truth",
           "minplus_bellman_ford", "or_reachability"]
