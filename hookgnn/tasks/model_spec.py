"""What a model for a task reads and decodes: input widths and the output/hint specs.

One code path for every model built from a task (:meth:`hookgnn.models.HookedGNN.for_task`,
:func:`hookgnn.training.build_model`, the metamer variants):

* ``node_in`` counts the columns of every node input (``pos`` included), ``edge_in``
  those of every edge input; a task without inputs at a location stores one column of
  ones there, so the width is then 1;
* the decoded features are the task's outputs, plus its hints when asked.
"""

from __future__ import annotations

from collections.abc import Sequence

from hookgnn.spec import FeatureSpec
from hookgnn.tasks.base import Task


def input_widths(task: Task) -> tuple[int, int]:
    """``(node_in, edge_in)``: columns of ``x`` and ``edge_attr`` the task's graphs carry.

    .. math:: \\text{node\\_in} = \\max\\big(1, \\textstyle\\sum_{f \\in \\text{node inputs}} \\text{width}(f)\\big)

    and alike for ``edge_in``.

    >>> from hookgnn.tasks import get_task
    >>> input_widths(get_task("bellman_ford"))  # pos and s on nodes, w on edges
    (2, 1)

    :param task: the task whose input features to count.
    """
    widths = {"node": 0, "edge": 0}
    for fs in task.spec.values():
        if fs.stage == "input" and fs.field_location in widths:
            widths[fs.field_location] += fs.width
    return widths["node"] or 1, widths["edge"] or 1  # tasks store a column of ones when empty


def select_spec(task: Task, features: Sequence[str] | None, hints: bool) -> dict[str, FeatureSpec]:
    """The output/hint specs of ``task`` to decode: ``features`` or all (hints only if ``hints``).

    A ``KeyError`` names the features that are no output or hint of the task.

    >>> from hookgnn.tasks import get_task
    >>> sorted(select_spec(get_task("bfs"), None, hints=False))
    ['pi', 'reach']

    :param task: the task whose spec to read.
    :param features: output/hint names to decode, or ``None`` for all outputs (and all hints if ``hints``).
    :param hints: with ``features=None``, decode the hints too.
    """
    if features is None:
        return {k: s for k, s in task.spec.items() if s.stage == "output" or (hints and s.stage == "hint")}
    unknown = [f for f in features if f not in task.spec or task.spec[f].stage == "input"]
    if unknown:
        decodable = sorted(k for k, s in task.spec.items() if s.stage != "input")
        raise KeyError(f"task {task.name!r} has no output or hint {unknown}; choose from {decodable}")
    return {k: task.spec[k] for k in features}
