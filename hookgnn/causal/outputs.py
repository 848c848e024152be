"""Interchange intervention accuracy node by node, one result per output, with its ceiling and chance.

:func:`~hookgnn.causal.interchange.interchange_accuracy` counts an intervention correct only
when *every* output agrees at *every* node; a trained reasoner that predicts its distances to
within a few percent on most nodes scores near zero there even without any intervention.
:func:`output_iia` scores each output separately and node by node, the way the NAR literature
reports accuracy: for an intervention ``i`` on node :math:`v_i` and a node ``u`` of its base
graph,

.. math:: \\mathrm{correct}_{i,u} = [\\, \\text{model}(b_i \\leftarrow s_i)_u \\equiv
          \\text{algorithm}(b_i, k_i, h_{v_i} \\leftarrow h^{s_i}_{v_i})_u \\,]

with the agreement rule of :func:`~hookgnn.causal.interchange.node_agreement` (pointers: the
highest-scoring in-edge points to the counterfactual parent; scalars: within ``tol`` times the
graph's largest target). Beside it, per node:

* ``base_correct``: the model *without* intervention agrees with the base graph's own output
  (the ceiling: a model that is wrong here cannot be expected to be right under intervention);
* ``unchanged``: the counterfactual agrees with the base graph's own output (an intervention
  that changes nothing scores these nodes right on a model at its ceiling: chance);
* ``downstream``: ``u`` is reachable from :math:`v_i` along the base graph's edges (``v_i``
  included): the only nodes an intervention on :math:`v_i` can change.

:meth:`OutputIIA.by_step` averages them over all nodes, the downstream nodes and the nodes the
counterfactual changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.patching.copies import chunks, disjoint_union
from hookgnn.causal.interchange import InterchangeData, node_agreement, run_interventions
from hookgnn.causal.subspaces import Subspace


def downstream_nodes(graph: Graph, node: int) -> Bool[Tensor, " node"]:
    """``[N]`` bool: the nodes reachable from ``node`` along the edges of ``graph`` (``node`` included).

    :param graph: the graph (or batch) whose directed edges ``edge_index`` are followed.
    :param node: the start node, a row of ``graph``; out of range raises ``IndexError``.

    >>> g = Graph(x=torch.zeros(4, 1), edge_index=torch.tensor([[0, 1, 3], [1, 2, 0]]))
    >>> downstream_nodes(g, 1).tolist()
    [False, True, True, False]
    """
    if not 0 <= node < graph.num_nodes:
        raise IndexError(f"node {node} out of range for {graph.num_nodes} nodes")
    src, dst = graph.edge_index
    reached = torch.zeros(graph.num_nodes, dtype=torch.bool)
    reached[node] = True
    while True:
        grown = reached.clone()
        grown[dst[reached[src]]] = True
        if torch.equal(grown, reached):
            return reached
        reached = grown


@dataclass
class OutputIIA:
    """Node-level interchange results for one hint, subspace and output (module docstring).

    Per intervention: ``steps`` ``[m]``; per (intervention, node of its base graph), flattened
    in intervention order: ``intervention`` ``[M]`` (which one), ``downstream``, ``correct``,
    ``base_correct`` and ``unchanged`` ``[M]`` bool.
    """

    hint: str
    subspace: str
    output: str
    steps: Int[Tensor, " m"]
    intervention: Int[Tensor, " M"]
    downstream: Bool[Tensor, " M"]
    correct: Bool[Tensor, " M"]
    base_correct: Bool[Tensor, " M"]
    unchanged: Bool[Tensor, " M"]

    @property
    def iia(self) -> float:
        """The share of (intervention, node) pairs right under intervention, over all nodes."""
        return _mean(self.correct)

    @property
    def iia_downstream(self) -> float:
        """The same over the intervened nodes' downstream nodes only."""
        return _mean(self.correct[self.downstream])

    def by_step(self) -> list[dict[str, Any]]:
        """One row per step: ``n`` (interventions); over all nodes ``iia``, ``ceiling``
        (``base_correct``) and ``chance`` (``unchanged``); the same over the downstream nodes
        (``iia_downstream``, ``ceiling_downstream``, ``chance_downstream``); and ``changed`` (how
        many nodes the counterfactual changes) with ``iia_changed`` (IIA over those; NaN without
        any)."""
        rows = []
        node_step = self.steps[self.intervention]
        for k in torch.unique(self.steps).tolist():
            at = node_step == k
            down, changed = at & self.downstream, at & ~self.unchanged
            rows.append({"hint": self.hint, "step": int(k), "subspace": self.subspace, "output": self.output,
                         "n": int((self.steps == k).sum()),
                         "iia": _mean(self.correct[at]), "ceiling": _mean(self.base_correct[at]),
                         "chance": _mean(self.unchanged[at]),
                         "iia_downstream": _mean(self.correct[down]),
                         "ceiling_downstream": _mean(self.base_correct[down]),
                         "chance_downstream": _mean(self.unchanged[down]),
                         "changed": int(changed.sum()), "iia_changed": _mean(self.correct[changed])})
        return rows


def _mean(flags: Tensor) -> float:
    return float(flags.double().mean()) if flags.numel() else math.nan


def output_iia(model: HookedRootModule, data: InterchangeData, subspace: Subspace, copies: int = 64,
               **forward_kwargs: Any) -> dict[str, OutputIIA]:
    """Run every intervention of ``data`` swapping ``subspace`` and score each output of
    ``data.outputs`` node by node (module docstring); one :class:`OutputIIA` per output.

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.tasks import get_task
    >>> from hookgnn.causal import interchange_data, random_interventions, task_pairs, whole_state
    >>> bf = get_task("bellman_ford")
    >>> _ = torch.manual_seed(0)
    >>> model = HookedGNN("mpnn", 8, node_in=2, edge_in=1, spec=bf.spec, max_steps=3)  # x: source flag and pos
    >>> pairs = task_pairs(bf, 4, seed=0, n=5, p=0.5)
    >>> data = interchange_data(bf, "d_h", pairs, random_interventions(pairs, [1, 2], seed=0), outputs=["pi", "d"])
    >>> r = output_iia(model, data, whole_state(8))
    >>> sorted(r), [row["step"] for row in r["pi"].by_step()]
    (['d', 'pi'], [1, 2])

    :param model: the hooked model; it is not modified.
    :param data: the interventions and their counterfactuals
        (:func:`~hookgnn.causal.interchange.interchange_data`; its ``outputs`` are scored, its
        ``tol`` is the scalar tolerance).
    :param subspace: the part of the node state that is swapped.
    :param copies: interventions run in one batched forward.
    :param forward_kwargs: keywords for every forward of the model, e.g. ``steps=8``.
    """
    if not data.interventions:
        raise ValueError("no interventions to score")
    parts: dict[str, dict[str, list[Tensor]]] = {
        n: {"correct": [], "base_correct": [], "unchanged": []} for n in data.outputs}
    downstream, owner = [], []
    with torch.no_grad():
        for start, part in chunks(data.interventions, copies):
            out, batch = run_interventions(model, data.pairs, part, subspace, **forward_kwargs)
            plain = model(batch, **forward_kwargs)
            bases = [data.pairs[i.pair][0] for i in part]
            cf = disjoint_union(data.counterfactuals[start:start + len(part)])
            for name in data.outputs:
                fs = data.task.spec[name]
                parts[name]["correct"].append(node_agreement(fs, out[name], cf[name], cf, data.tol))
                parts[name]["base_correct"].append(node_agreement(fs, plain[name], batch[name], batch, data.tol))
                parts[name]["unchanged"].append(node_agreement(fs, batch[name], cf[name], cf, data.tol))
            downstream += [downstream_nodes(b, i.node) for b, i in zip(bases, part)]
            owner += [torch.full((b.num_nodes,), start + j, dtype=torch.long) for j, b in enumerate(bases)]
    steps = torch.tensor([i.step for i in data.interventions])
    down, who = torch.cat(downstream), torch.cat(owner)
    return {name: OutputIIA(data.hint, subspace.name, name, steps, who, down,
                            *(torch.cat(parts[name][f]) for f in ("correct", "base_correct", "unchanged")))
            for name in data.outputs}
