"""Gated runs: every unit of a universe mixed with its ablation value by a gate, copy by copy.

The engine under :func:`~hookgnn.circuits.masks.learn_mask` (continuous gates, with
gradients), :func:`~hookgnn.circuits.discover.acdc` and
:func:`~hookgnn.circuits.or_groups.redundancy` (0/1 gates, many candidate circuits per forward).
For a gate :math:`g_u \\in [0, 1]` per unit (1: in the circuit) and ``k`` copies of the base
graph in one disjoint union, copy :math:`j` runs with

.. math:: a \\leftarrow \\kappa_{ju}\\, a + (1 - \\kappa_{ju})\\, a^{abl}

on the entries of unit :math:`u`, where the *live* share is :math:`\\kappa = g` when noising
(the clean run; units outside the circuit take the ablation value :math:`a^{abl}`: the
corrupted run's, zero or the dataset mean) and :math:`\\kappa = 1 - g` when denoising (the
corrupted run; units *in* the circuit take the clean run's value). With 0/1 gates a copy is
exactly :func:`~hookgnn.circuits.circuit.evaluate` of its circuit, with the same hook
mechanics: a :class:`~hookgnn.patching.components.MessageEdge` is row ``edge`` of its round's
carrier (``hook_src``), a :class:`~hookgnn.patching.components.Component` its entries, and a
:class:`~hookgnn.patching.components.WeightEdge` ``i -> j`` of a weight link adds
:math:`(1 - \\kappa) W_{ji} (a^{abl}_i - a_i)` to ``dst_j`` (to the link's ``pre`` hook point
before an activation). Hook points and links come from the rounds protocol
(:func:`~hookgnn.patching.components.message_hooks`, :func:`~hookgnn.nn.wiring.links_of`);
no model class or hook name is read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from hookgnn.circuits.circuit import Ablation, _carriers, _links_for, ablation_values
from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.metrics.per_graph import Metric
from hookgnn.metrics.targets import CleanTargets, with_clean_fields
from hookgnn.patching.components import Component, MessageEdge, WeightEdge, check_carriers, component_mask
from hookgnn.patching.copies import copies_per_forward, copy_means, disjoint_union, metric_per_copy, per_copy
from hookgnn.patching.results import Direction, check_direction

Unit = Component | MessageEdge | WeightEdge
HookList = list[tuple[str, Callable[..., Any]]]

__all__ = ["Gated", "Unit"]

#: states entering a round kept for resuming, at most (the oldest recorded are dropped first)
MAX_ENTERING = 128


class Gated:
    """Runs of ``base`` (``k`` copies per forward) with one gate vector per copy over ``units``.

    ``base`` is the graph whose run is gated (the clean graph when noising, the corrupted one
    when denoising); ``source`` the graph whose activations are the ablation values
    (``"resample"``; the other of the pair). ``metric`` must already read the clean graph's
    targets. ``forwards`` and ``copies_run`` count the cost. ``pairs``: how many pairs of one
    structure ``base`` and ``source`` are disjoint unions of; a unit names one pair's rows and is
    gated in every pair (row ``r`` of the pair's ``R`` rows is row ``p R + r`` of pair ``p``).

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.metrics.per_graph import OutputSum
    >>> from hookgnn.spec import FeatureSpec
    >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=1)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> c = g.replace(x=torch.randn(3, 1))
    >>> run = Gated(model, g, c, OutputSum("d"), [Component("hook_out.d", i) for i in range(3)], "resample", "noising")
    >>> m = run.metrics(torch.tensor([[1., 1., 1.], [0., 0., 0.]]))
    >>> [round(float(v), 4) for v in m] == [round(float(OutputSum("d")(model(x), x).detach()), 4) for x in (g, c)]
    True
    """

    def __init__(
        self, model: HookedRootModule, base: Graph, source: Graph, metric: Metric, units: Sequence[Unit],
        ablation: Ablation, direction: Direction, dataset: Graph | None = None, copies: int = 64,
        pairs: int = 1, **forward_kwargs: Any,
    ) -> None:
        self.direction = check_direction(direction)
        if isinstance(pairs, bool) or not isinstance(pairs, int) or pairs < 1:
            raise ValueError(f"pairs must be an integer >= 1, got {pairs!r}")
        self.pairs = pairs
        if self.direction == "denoising" and ablation != "resample":
            raise ValueError(f"direction='denoising' patches the clean run's values into the corrupted run, so it needs "
                             f"ablation='resample', got {ablation!r}; use direction='noising' for {ablation!r} ablation")
        self.model, self.base, self.metric, self.kw = model, base, metric, forward_kwargs
        self.units = list(units)
        if len(set(self.units)) != len(self.units):
            raise ValueError("a unit is listed twice in the universe")
        self.n = len(self.units)
        self.rows: dict[str, list[tuple[int, int]]] = {}        # hook -> [(unit, row)]
        self.masks: dict[str, list[tuple[int, Component]]] = {}  # hook -> [(unit, component with a feature)]
        wedges: list[WeightEdge] = []
        self.wpos: dict[WeightEdge, int] = {}
        carrier = _carriers(model)
        for i, u in enumerate(self.units):
            if isinstance(u, MessageEdge):
                c = carrier(u)
                self.rows.setdefault(c.hook, []).append((i, c.index))  # type: ignore[arg-type]
            elif isinstance(u, Component):
                if u.feature is None and u.index is not None:
                    self.rows.setdefault(u.hook, []).append((i, u.index))
                else:
                    self.masks.setdefault(u.hook, []).append((i, u))
            elif isinstance(u, WeightEdge):
                wedges.append(u)
                self.wpos[u] = i
            else:
                raise TypeError(f"a unit is a Component, MessageEdge or WeightEdge, got {type(u).__name__}")
        for h, rows in self.rows.items():
            seen = [r for _, r in rows]
            if len(set(seen)) != len(seen):
                raise ValueError(f"two units of the universe cover the same row of {h}; give each row once")
        msg_hooks = sorted({carrier(u).hook for u in self.units if isinstance(u, MessageEdge)})
        check_carriers(model, msg_hooks)
        self.links = _links_for(model, wedges)
        for link, _ in self.links:
            if link.weight is None:
                raise NotImplementedError(
                    f"weight edges of link {link.name} (round {link.round}, {link.kind}) have no weight matrix: gated "
                    "runs (learn_mask, acdc, redundancy) gate weight links only; evaluate such edges with evaluate()")
            if link.act != "identity" and link.pre is None:
                raise ValueError(f"weight edges of link {link.name} (round {link.round}) feed {link.dst} through an "
                                 "activation and the link names no pre hook point: they cannot be gated")
        self.row_index = {h: (torch.tensor([u for u, _ in rows], dtype=torch.long),
                              torch.tensor([r for _, r in rows], dtype=torch.long)) for h, rows in self.rows.items()}
        # hooks whose units gate rows 0 .. R-1, each once: a copy's live rows are its gates gathered in row order
        self.by_row = {h: us[rs.argsort()] for h, (us, rs) in self.row_index.items()
                       if torch.equal(rs.sort().values, torch.arange(len(rs)))}
        gate_hooks = sorted(set(self.rows) | set(self.masks))
        src_hooks = sorted({l.src for l, _ in self.links})
        hooks = sorted(set(gate_hooks) | set(src_hooks))
        self.values = ablation_values(model, hooks, source, ablation, dataset, **forward_kwargs) if hooks else {}
        dst_hooks = [l.pre if l.act != "identity" else l.dst for l, _ in self.links]
        self.copies = copies_per_forward(model, sorted(set(hooks) | set(dst_hooks)), copies) if hooks else copies
        self.gate_hooks = gate_hooks
        self.forwards = 0
        self.copies_run = 0
        self.batches: dict[int, Graph] = {}
        self.scored: dict[int, Graph] = {}
        # Resuming: copies whose gates agree on every unit of rounds < t share the state entering
        # round t, run once on one copy (weight edges read live link sources: no resuming).
        self.resumable = not self.links and model.can_resume(**forward_kwargs)
        rounds = [model.round_of(u.hook) if isinstance(u, Component) else u.round for u in self.units]
        self.unit_round = torch.tensor([0 if r is None else r for r in rounds], dtype=torch.long)
        self.steps = forward_kwargs.get("steps") or model.num_rounds
        self.entering: dict[tuple[int, bytes], tuple[Tensor, Any]] = {}

    def live_share(self, gates: Float[Tensor, "k unit"]) -> Float[Tensor, "k unit"]:
        """:math:`\\kappa`: the gates when noising, ``1 - gates`` when denoising."""
        return gates if self.direction == "noising" else 1.0 - gates

    def metrics(self, gates: Float[Tensor, "k unit"]) -> Float[Tensor, " k"]:
        """The metric (mean over the base graph's graphs) of each gated copy; differentiable in ``gates``."""
        if gates.dim() != 2 or gates.shape[1] != self.n:
            raise ValueError(f"gates must be [copies, {self.n}] (one per unit), got {tuple(gates.shape)}")
        out = []
        with torch.set_grad_enabled(torch.is_grad_enabled() and gates.requires_grad):
            for start in range(0, gates.shape[0], self.copies):
                out.append(self._run(self.live_share(gates[start:start + self.copies])))
        return torch.cat(out) if out else gates.new_zeros(0)

    def _run(self, keep: Tensor) -> Tensor:
        """Resume where the states entering a round are known: copies whose gates agree on every unit
        of rounds < t share the state entering round t. The latest such round at or before the first
        round where the copies differ is used (one copy: any round); the states entering every round
        are recorded from copy 0 when none is known."""
        if not self.resumable or keep.requires_grad:
            return self._forward(keep)
        last = self.steps - 1
        if keep.shape[0] > 1:
            differ = (keep != keep[:1]).any(0)
            if bool(differ.any()):
                last = min(int(self.unit_round[differ].min()), last)
        for t in range(last, 0, -1):
            hit = self.entering.get(self._key(keep[0], t))
            if hit is not None:
                return self._forward(keep, (t, *hit))
        if last < 1:
            return self._forward(keep)
        if keep.shape[0] == 1:  # the copy itself: run it whole and record its states
            return self._forward(keep, record=True)
        self._forward(keep[:1], record=True)
        return self._forward(keep, (last, *self.entering[self._key(keep[0], last)]))

    def _key(self, keep: Tensor, t: int) -> tuple[int, bytes]:
        return t, keep[self.unit_round < t].cpu().numpy().tobytes()

    def _forward(self, keep: Tensor, resume: tuple[int, Tensor, Any] | None = None, record: bool = False) -> Tensor:
        """A gated forward of ``k`` copies: the metric of each; ``resume``: (round, state, output before);
        ``record`` (one copy, not resumed): keep the states entering every round for resuming."""
        k = keep.shape[0]
        if k not in self.batches:  # one collate per number of copies, and its graph with the clean targets
            self.batches[k] = disjoint_union([self.base] * k)
            if isinstance(self.metric, CleanTargets):
                self.scored[k] = with_clean_fields(self.batches[k], self.metric.clean)
        batch = self.batches[k]
        binary = not keep.requires_grad and bool(((keep == 0) | (keep == 1)).all())
        on = keep > 0.5
        specs: HookList = []
        live: dict[str, Tensor] = {}
        src_idx, dst_idx = self.base.edge_index
        for link, edges in self.links:
            target = link.pre if link.act != "identity" else link.dst
            w = link.weight
            assert w is not None
            js = torch.tensor([e.dst.feature for e in edges], dtype=torch.long)
            is_ = torch.tensor([e.src.feature for e in edges], dtype=torch.long)
            cols = torch.tensor([self.wpos[e] for e in edges], dtype=torch.long)
            m = torch.zeros(k, *w.shape, dtype=keep.dtype, device=w.device)
            m = m.index_put((torch.arange(k)[:, None], js[None, :], is_[None, :]), (1 - keep[:, cols]) * w[js, is_].to(keep))

            def fix(act: Tensor, hook: Any, link: Any = link, m: Tensor = m) -> Tensor:
                cur = per_copy(live[link.src], k)
                diff = self.values[link.src].to(cur) - cur  # [k, rows_src, d_src]
                rows = diff if link.rows == "same" else diff[:, src_idx if link.rows == "src" else dst_idx]
                return act + torch.einsum("krs,kds->krd", rows, m.to(act)).reshape(act.shape)
            specs.append((target, fix))
        pairs = self.pairs

        def as_view(v: Tensor) -> Tensor:
            """An ablation value ([pairs R, ...] rows of the source, or one row [1, ...]) laid out as the view."""
            if v.shape[0] == 1:
                return v.reshape(1, 1, 1, *v.shape[1:])
            return per_copy(v, pairs).transpose(0, 1).unsqueeze(0)

        for h in self.gate_hooks:
            def gate(act: Tensor, hook: Any, h: str = h) -> Tensor:
                # [k copies x pairs x R rows, ...] -> [k, R, pairs, ...]: a unit gates its row in every pair
                full = per_copy(act, k * pairs)
                view = full.reshape(k, pairs, *full.shape[1:]).transpose(1, 2)
                lift = [1] * (view.dim() - 2)  # [k, R] -> [k, R, 1, ...]
                value = as_view(self.values[h].to(act))
                if binary and h not in self.masks:  # rows only, 0/1 gates: the live or the ablated row itself
                    us, rs = self.row_index[h]
                    if h in self.by_row and len(us) == view.shape[1]:
                        live = on.index_select(1, self.by_row[h]).to(act.device)
                    else:
                        live = torch.ones(view.shape[:2], dtype=torch.bool, device=act.device)
                        live[:, rs.to(act.device)] = on[:, us].to(act.device)
                    mixed = torch.where(live.reshape(*live.shape, *lift), view, value)
                    return mixed.transpose(1, 2).reshape(act.shape)
                share = torch.ones(view.shape[:2], dtype=keep.dtype, device=act.device)
                if h in self.rows:
                    us, rs = self.row_index[h]
                    share = share.index_copy(1, rs.to(act.device), keep[:, us.to(keep.device)])
                share = share.reshape(*share.shape, *lift)
                for u, c in self.masks.get(h, []):
                    one_pair = (full.shape[1], *full.shape[2:])
                    mask = component_mask([c], h, one_pair, act.device).to(keep).unsqueeze(1)  # [R, 1, ...]
                    share = share * (1 - (1 - keep[:, u]).reshape(k, *lift, 1) * mask)
                if not binary:
                    mixed = share.to(act) * view + (1 - share.to(act)) * value
                else:  # 0/1 gates: the live or the ablated entry itself, as evaluate sets it
                    mixed = torch.where(share > 0.5, view, value)
                return mixed.transpose(1, 2).reshape(act.shape)
            specs.append((h, gate))
        for s in sorted({l.src for l, _ in self.links}):
            def record(act: Tensor, hook: Any, s: str = s) -> None:
                live[s] = act
            specs.append((s, record))
        recorded: dict[int, Tensor] = {}
        for t in range(1, self.steps) if record else ():
            def keep_state(act: Tensor, hook: Any, t: int = t) -> None:
                recorded[t] = act
            specs.append((self.model.state_hook(t), keep_state))
        with self.model.hooks(fwd_hooks=specs):
            if resume is None:
                out = self.model(batch, **self.kw)
            else:
                t, state, before = resume
                out = self.model.resume(batch, t, state.repeat(k, 1), before, k, **self.kw)
        self.forwards += 1
        self.copies_run += k
        for t, state in recorded.items():
            self.entering[self._key(keep[0], t)] = (state, out)
            if len(self.entering) > max(MAX_ENTERING, 2 * self.steps):  # the oldest go first: bounded memory
                del self.entering[next(iter(self.entering))]
        if k in self.scored:  # the clean targets tiled once per number of copies, not on every forward
            assert isinstance(self.metric, CleanTargets)
            return copy_means(self.metric.metric(out, self.scored[k]), k)
        return metric_per_copy(self.metric, out, batch, k)
