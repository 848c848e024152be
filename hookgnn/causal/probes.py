"""Linear probes per (hint, step): is the algorithm's hint at step k decodable from the state?

For hint step ``k`` the probe reads the node states entering round ``k`` (the rounds
protocol's :meth:`~hookgnn.rounds.RoundMethods.state_hook` ``k``: the state after round
``k - 1``), over many graphs, split by graph into train and held-out parts:

* scalar: ridge regression in closed form, :math:`w = (X^\\top X + \\lambda n I)^{-1} X^\\top y`
  on standardised states with an intercept; score :math:`R^2 = 1 - \\sum (y - \\hat y)^2 /
  \\sum (y - \\bar y)^2` on the held-out nodes;
* mask, mask_one: logistic regression (L-BFGS, L2 penalty :math:`\\lambda`); score: accuracy;
* categorical: softmax regression; score: accuracy;
* pointer: a bilinear score per edge, :math:`s_{u \\to v} = h_u^\\top W h_v + a^\\top h_u`, softmax
  over the in-edges of each node; score: accuracy of the node pointed to.

Each probe is reported with a control task (Hewitt and Liang): the same probe trained and
scored on labels shuffled among the nodes (pointers: a random in-edge per node), so
``selectivity = score - control``; and, when the caller passes one, the same probe on an
untrained model of the same architecture (:func:`untrained_like`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from torch.nn import functional as F

from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.store import ActivationStore


@dataclass
class StepStates:
    """The node states entering round ``step`` of many graphs, with the hints at that step."""

    x: Tensor  # [N, d]
    edge_index: Tensor  # [2, E] over the rows of x
    graph: Tensor  # [N] graph id of each row
    labels: dict[str, Tensor] = field(default_factory=dict)  # stored form: [N, ...] or [E] (pointers)


def collect_states(model: HookedRootModule, graphs: Iterable[Graph], hints: Sequence[str], steps: Sequence[int],
                   **forward_kwargs: Any) -> dict[int, StepStates]:
    """Run ``model`` on every graph (or batch) and keep, for each step ``k`` of ``steps``, the
    states of ``model.state_hook(k)`` and the hints at step ``k`` (each graph's last step past
    its end)."""
    names = {k: model.state_hook(k) for k in steps}
    parts: dict[int, list[tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]]] = {k: [] for k in steps}
    offset, gid = 0, 0
    for batch in graphs:
        missing = [h for h in hints if h not in batch.fields]
        if missing:
            raise KeyError(f"a graph has no hint field {missing}; it has {sorted(batch.fields)}")
        with torch.no_grad():
            _, cache = model.run_with_cache(batch, names_filter=list(names.values()), **forward_kwargs)
        for k, name in names.items():
            labels = {h: batch[h][min(k, batch[h].shape[0] - 1)] for h in hints}
            parts[k].append((cache[name].detach().float(), batch.edge_index + offset, batch.batch + gid, labels))
        offset, gid = offset + batch.num_nodes, gid + batch.num_graphs
    if not offset:
        raise ValueError("graphs is empty: nothing to probe")
    return {k: StepStates(torch.cat([p[0] for p in ps]), torch.cat([p[1] for p in ps], 1),
                          torch.cat([p[2] for p in ps]),
                          {h: torch.cat([p[3][h] for p in ps]) for h in hints}) for k, ps in parts.items()}


def store_states(model: HookedRootModule, store: ActivationStore, hints: Sequence[str], step: int) -> StepStates:
    """The states entering round ``step`` (``model.state_hook(step)``) of every graph of ``store``, with
    the hints at step ``step`` (each graph's last step past its end): what :func:`collect_states` gives
    for that step, read from the store's mapped files instead of running the model.

    >>> import tempfile
    >>> from hookgnn import HookedGNN
    >>> from hookgnn.tasks import get_task
    >>> bfs = get_task("bfs")
    >>> model = HookedGNN("mpnn", 4, node_in=2, edge_in=1, spec=bfs.spec, max_steps=2)
    >>> graphs = [bfs.sample(2, "path", n=3)]
    >>> store = ActivationStore.write(tempfile.mkdtemp(), model, graphs, [model.state_hook(1)], labels=["reach_h"])
    >>> s = store_states(model, store, ["reach_h"], 1)
    >>> torch.equal(s.x, collect_states(model, graphs, ["reach_h"], [1])[1].x)
    True

    :param model: the model the store was written from (it names the hook point of each step; it is not run).
    :param store: an activation store holding ``model.state_hook(step)`` and the hints as labels.
    :param hints: the hints to read (stored labels).
    :param step: the step: the states entering round ``step`` and the hints at step ``step``.
    """
    check_store(model, store, hints, step)
    on_edges = any(store.meta["labels"][h]["location"] == "edge" for h in hints)  # pointers: a label per edge
    edges = store.edge_index() if on_edges or "edges" in store.meta else torch.zeros(2, 0, dtype=torch.long)
    return StepStates(store.activations(model.state_hook(step)).float(), edges, store.node_graph(),
                      {h: store.label_at(h, step) for h in hints})


def check_store(model: HookedRootModule, store: ActivationStore, hints: Sequence[str], step: int) -> None:
    """Raise, naming what is missing, unless ``store`` holds ``model.state_hook(step)`` and every hint."""
    name = model.state_hook(step)
    if name not in store.hooks:
        raise KeyError(f"the store has no hook point {name!r} (the state entering round {step}); it has "
                       f"{store.hooks}: write it with that hook point")
    missing = [h for h in hints if h not in store.meta["labels"]]
    if missing:
        raise KeyError(f"the store has no label {missing}; it has {sorted(store.meta['labels'])}: write it with "
                       "labels=[...] naming the hints")


def untrained_like(model: HookedRootModule, seed: int = 0) -> HookedRootModule:
    """A deep copy of ``model`` with every parameter re-initialised (``reset_parameters`` of each
    module, under ``torch.manual_seed(seed)``): the baseline of a probe."""
    fresh = copy.deepcopy(model)
    torch.manual_seed(seed)
    for module in fresh.modules():
        reset = getattr(module, "reset_parameters", None)
        if callable(reset) and module is not fresh:
            reset()
    return fresh


@dataclass
class Probe:
    """A fitted probe: ``kind`` (the hint type), its parameters and the state standardisation."""

    kind: str
    mean: Tensor
    std: Tensor
    params: dict[str, Tensor]

    def scores(self, x: Float[Tensor, "node d"], edge_index: Int[Tensor, "2 edge"] | None = None) -> Tensor:
        """Raw predictions: values (scalar), logits [N] (masks), [N, c] (categorical), [E] (pointer)."""
        z = (x.double() - self.mean) / self.std
        if self.kind == "pointer":
            src, dst = edge_index
            return ((z[src] @ self.params["W"]) * z[dst]).sum(-1) + z[src] @ self.params["a"]
        out = z @ self.params["w"] + self.params["b"]
        return out if self.kind == "categorical" else out.squeeze(-1)

    @property
    def direction(self) -> Tensor:
        """The probe's weight in the (unstandardised) state space, ``[c, d]``: what
        :func:`~hookgnn.causal.subspaces.directions` takes (not for pointer probes)."""
        if self.kind == "pointer":
            raise ValueError("a pointer probe is bilinear: it has no single direction")
        return (self.params["w"] / self.std[:, None]).T.float()


def fit_probe(kind: str, x: Tensor, y: Tensor, edge_index: Tensor | None = None, ridge: float = 1e-2,
              iters: int = 50) -> Probe:
    """Fit a probe of hint type ``kind`` on states ``x`` [N, d] and stored labels ``y`` (module docstring).

    >>> x = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    >>> p = fit_probe("scalar", x, 2 * x[:, 0] + 1, ridge=0.0)
    >>> [round(v, 4) for v in p.scores(x, None).tolist()]
    [1.0, 3.0, 5.0, 7.0]
    """
    if ridge < 0:
        raise ValueError(f"ridge must be >= 0, got {ridge}")
    xd = x.double()
    mean, std = xd.mean(0), xd.std(0, unbiased=False)
    std = torch.where(std > 1e-12 * std.max().clamp_min(1e-300), std, torch.ones_like(std))
    z = (xd - mean) / std
    n, d = z.shape
    if kind == "scalar":
        z1 = torch.cat([z, torch.ones(n, 1, dtype=z.dtype)], 1)
        reg = ridge * n * torch.eye(d + 1, dtype=z.dtype)
        reg[d, d] = 0.0  # no penalty on the intercept
        sol = torch.linalg.lstsq(z1.T @ z1 + reg, z1.T @ y.double()[:, None]).solution
        return Probe(kind, mean, std, {"w": sol[:d], "b": sol[d]})
    if kind == "pointer":
        if edge_index is None:
            raise ValueError("a pointer probe needs the edge_index of the states")
        params = {"W": torch.zeros(d, d, dtype=z.dtype, requires_grad=True),
                  "a": torch.zeros(d, dtype=z.dtype, requires_grad=True)}
    else:
        width = y.shape[-1] if kind == "categorical" else 1
        params = {"w": torch.zeros(d, width, dtype=z.dtype, requires_grad=True),
                  "b": torch.zeros(width, dtype=z.dtype, requires_grad=True)}
    if kind not in ("mask", "mask_one", "categorical", "pointer"):
        raise ValueError(f"no probe for hints of type {kind!r}")
    probe = Probe(kind, mean, std, params)
    opt = torch.optim.LBFGS(list(params.values()), max_iter=iters, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = probe_loss(probe, x, y, edge_index) + ridge * sum((p ** 2).sum() for p in params.values())
        loss.backward()
        return loss

    opt.step(closure)
    probe.params = {k: v.detach() for k, v in params.items()}
    return probe


def probe_loss(probe: Probe, x: Tensor, y: Tensor, edge_index: Tensor | None) -> Tensor:
    """Cross-entropy of a classification probe's predictions (module docstring)."""
    s = probe.scores(x, edge_index)
    if probe.kind in ("mask", "mask_one"):
        return F.binary_cross_entropy_with_logits(s, y.double())
    if probe.kind == "categorical":
        return F.cross_entropy(s, y.argmax(-1))
    dst = edge_index[1]
    top = torch.full((x.shape[0],), -torch.inf, dtype=s.dtype).scatter_reduce(0, dst, s.detach(), "amax")
    z = torch.zeros(x.shape[0], dtype=s.dtype).index_add(0, dst, (s - top[dst]).exp())
    return -((s - top[dst] - z.log()[dst]) * y.double()).sum() / x.shape[0]


def probe_score(probe: Probe, x: Tensor, y: Tensor, edge_index: Tensor | None) -> float:
    """R^2 (scalar) or accuracy (the others) of ``probe`` on states ``x`` with labels ``y``."""
    s = probe.scores(x, edge_index).detach()
    if probe.kind == "scalar":
        y = y.double()
        total = ((y - y.mean()) ** 2).sum()
        return float(1 - ((y - s) ** 2).sum() / total) if total > 0 else float("nan")
    if probe.kind in ("mask", "mask_one"):
        return float(((s > 0) == (y > 0.5)).double().mean())
    if probe.kind == "categorical":
        return float((s.argmax(-1) == y.argmax(-1)).double().mean())
    return float((_pointed(s, edge_index, x.shape[0]) == _pointed(y.double(), edge_index, x.shape[0])).double().mean())


def _pointed(scores: Tensor, edge_index: Tensor, n: int) -> Tensor:
    src, dst = edge_index
    best = torch.full((n,), -torch.inf, dtype=scores.dtype).scatter_reduce(0, dst, scores, "amax")
    hit = scores == best[dst]
    first = torch.full((n,), scores.shape[0], dtype=torch.long).scatter_reduce(
        0, dst[hit], torch.arange(scores.shape[0])[hit], "amin")
    return src[first.clamp(max=max(scores.shape[0] - 1, 0))]
