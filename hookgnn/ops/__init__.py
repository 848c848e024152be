"""Graph ops: scatter reductions (with argmax-saving max/min) and edge softmax."""

from hookgnn.ops.backend import (
    BACKENDS,
    Backend,
    available_backends,
    get_backend,
    set_backend,
    use_backend,
)
from hookgnn.ops.plan import ScatterPlan, scatter_plans
from hookgnn.ops.scatter import REDUCTIONS, Reduce, scatter, scatter_max, scatter_min
from hookgnn.ops.softmax import scatter_log_softmax, scatter_softmax

__all__ = [
    "BACKENDS",
    "Backend",
    "available_backends",
    "get_backend",
    "set_backend",
    "use_backend",
    "REDUCTIONS",
    "Reduce",
    "ScatterPlan",
    "scatter",
    "scatter_log_softmax",
    "scatter_max",
    "scatter_min",
    "scatter_plans",
    "scatter_softmax",
]
