"""AtP* for message passing: recompute what a patch changes locally and exactly, linearise the rest.

Attribution patching multiplies an activation difference by a gradient. Through a max
or min aggregation the gradient reaches only the winning message, so a winner's whole
change passes through although the max only falls to the runner-up (overshoot), and a
losing message that would win gets exactly 0 (a missed new winner). AtP* (Kramár et
al., 2024) fixes the same saturation of attention by recomputing the softmax exactly
and linearising only what follows; here the exact part is the round(s) the patch enters.

For a single-message patch (round :math:`t`, edge :math:`e = u \\to v`: row :math:`e` of
``hook_src`` set to the source run's row):

1. :math:`m'_e` = the round's own ``message`` on the patched row and the base run's other
   inputs; one call covers all :math:`E` candidates of a round;
2. the aggregation at :math:`v` exactly, per feature: for max/min from the best and
   second-best message and the winner (the aggregation *without* :math:`e` is the
   runner-up if :math:`e` won, the winner otherwise), for sum/mean
   :math:`a' = a - m_e + m'_e` (mean: divided by the in-degree); anything else
   (attention, a processor's own ``aggregate``, any wrapped PyG layer) by running the
   round's module on the local subgraph of :math:`v` (:mod:`hookgnn.attribution.local`),
   whose shape is checked against full calls of the round on this graph first
   (:mod:`hookgnn.attribution.receptive`; a round that no local subgraph reproduces
   raises :class:`~hookgnn.attribution.LocalRecomputeError`);
3. the update at :math:`v` exactly: :math:`h'_v = \\mathrm{update}(a'_v, h_v, x_v)`;
4. the rest linearised: :math:`\\hat s_e = (h'_v - h_v) \\cdot \\partial m / \\partial h^{(t)}_v`
   (the gradient at the state leaving round :math:`t`, from one backward pass);
5. when the exact part reaches the last round, the decoders and the metric are
   evaluated exactly on the changed final states instead.

``exact_rounds = k`` recomputes rounds :math:`t .. t+k-1` exactly: round :math:`t + 1`
recomputes every node the changed state of :math:`v` reaches (its out-neighbours, and
:math:`v` itself), each from all of its in-edges, and so on; the linearisation starts
after round :math:`t + k - 1`. With :math:`k` covering every remaining round this is
exact patching. Node patches (round :math:`t`, node :math:`v`: row :math:`v` of the
state leaving round :math:`t` set to the source run's row) work the same way from round
:math:`t + 1`: there ``exact_rounds = k`` recomputes rounds :math:`t+1 .. t+k`.

Scores are effects (metric change, mean over the graphs of the batch) with the same
components, direction, sign and ``baseline`` as :func:`~hookgnn.patching.patch` of ``messages(model)`` and
of ``nodes(model, "update")``, so
``atp_star(...).values`` compares with ``sweep.values`` directly.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Literal

import torch
from jaxtyping import Float, Int
from torch import Tensor

from hookgnn.attribution.local import LocalRound, Perturbation, Shape, capture_round_inputs, propagate
from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.metrics.per_graph import Metric
from hookgnn.metrics.targets import clean_targets
from hookgnn.ops import scatter, scatter_max, scatter_min
from hookgnn.attribution.receptive import check_sources, checked_round, configuration
from hookgnn.patching.activation import base_and_source, check_same_structure
from hookgnn.patching.copies import chunks, copies_per_forward, disjoint_union, metric_per_copy
from hookgnn.patching.components import check_carriers
from hookgnn.patching.results import DEFAULT_DIRECTION, Direction, HookScores
from hookgnn.ops.threads import threads_by_workload

Level = Literal["message", "node"]
_FAST = ("max", "min", "sum", "mean")


@threads_by_workload
def atp_star(
    model: HookedRootModule,
    clean: Graph,
    corrupted: Graph,
    metric: Metric,
    *,
    exact_rounds: int = 1,
    level: Level = "message",
    direction: Direction = DEFAULT_DIRECTION,
    rounds: Sequence[int] | None = None,
    chunk: int = 256,
    **forward_kwargs: Any,
) -> HookScores:
    """AtP* estimates of every single-message (or node) patch: ``[round, edge]`` (or ``[round, node]``).

    See the module docstring for the method. ``exact_rounds >= 1`` rounds are
    recomputed exactly; ``chunk`` copies of the graph are decoded at once for the last
    round. Returns :class:`~hookgnn.patching.HookScores` of effects (``baseline``: the base run's
    metric) whose hooks are ``layers.t.hook_src`` (messages) or ``layers.t.hook_update`` (nodes).

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.metrics import OutputSum
    >>> from hookgnn.spec import FeatureSpec
    >>> model = HookedGNN("minagg", 4, node_in=1, edge_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=3)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1, 2], [1, 2, 0]]), edge_attr=torch.rand(3, 1))
    >>> s = atp_star(model, g, g.replace(x=torch.randn(3, 1)), OutputSum("d"))
    >>> s.axes, tuple(s.values.shape), s.direction
    (('round', 'edge'), (3, 3), 'denoising')

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param clean: the clean graph or batch (:class:`~hookgnn.graph.Graph`); the metric reads its targets.
    :param corrupted: the corrupted graph or batch: the same nodes and edges as ``clean`` (activations are swapped
        row for row).
    :param metric: ``metric(output, graph)`` -> one value per graph (:mod:`hookgnn.metrics`), averaged over the
        batch.
    :param exact_rounds: how many rounds (at least 1), from the one the patch enters, are recomputed exactly; the
        rest is linearised.
    :param level: ``"message"`` (``[round, edge]``) or ``"node"`` (``[round, node]``).
    :param direction: ``"denoising"`` (clean values patched into the corrupted run, the default) or ``"noising"``
        (corrupted values into the clean run).
    :param rounds: the rounds to score (default: every round).
    :param chunk: copies of the graph decoded at once for the last round.
    :param forward_kwargs: keywords for every forward of the model, e.g. ``steps=8``.
    """
    if exact_rounds < 1:
        raise ValueError(f"exact_rounds must be >= 1 (0 would be plain attribution patching), got {exact_rounds}")
    if level not in ("message", "node"):
        raise ValueError(f"level must be 'message' or 'node', got {level!r}")
    check_same_structure(clean, corrupted)
    metric = clean_targets(metric, clean)
    base, src = base_and_source(clean, corrupted, direction)
    num = forward_kwargs.get("steps") or model.num_rounds
    rounds = list(range(num)) if rounds is None else list(rounds)
    bad = [t for t in rounds if not 0 <= t < num]
    if bad:
        raise ValueError(f"rounds {bad} do not exist; this run has rounds 0 .. {num - 1}")
    outs = [model.output_hook(t) for t in range(num)]  # what round t's module returned
    carriers = [model.round_hook("hook_src", t) for t in range(num)] if level == "message" else []
    check_carriers(model, carriers)
    patched = carriers if level == "message" else outs
    run = _BaseRun(model, base, metric, outs, bool(carriers), forward_kwargs)
    with torch.no_grad():
        _, source = model.run_with_cache(src, names_filter=[patched[t] for t in rounds], **forward_kwargs)
        rows = []
        for t in rounds:
            if level == "message":
                pert = _message_round(model, run, t, source[carriers[t]])
                last = min(t + exact_rounds - 1, num - 1)
            else:
                new = source[outs[t]]
                every = torch.arange(new.shape[0], device=new.device)
                pert = Perturbation(every, every, new, new.shape[0]).changed(run.out(t))
                last = min(t + exact_rounds, num - 1)
            for r in range(t + 1, last + 1):
                pert = propagate(run.local(r), run.carry(r - 1, pert)).changed(run.out(r))
            if last == num - 1:
                rows.append(_exact_tail(model, run, pert, chunk))
            else:
                rows.append(pert.linearised(run.out(last), run.grad(last)).double().cpu())
    return HookScores(torch.stack(rows).float().cpu(), tuple(patched[t] for t in rounds),
                      ("round", "edge" if level == "message" else "node"), run.baseline, direction)


class _BaseRun:
    """The base run: its output and metric, the inputs of every round, what every round
    returned and the metric's gradient there (one forward and one backward)."""

    def __init__(self, model: HookedRootModule, graph: Graph, metric: Metric, outs: list[str], messages: bool,
                 forward_kwargs: dict[str, Any]) -> None:
        self.model, self.graph, self.metric, self.forward_kwargs = model, graph, metric, forward_kwargs
        num = len(outs)
        extra = [name for t in range(num) for h in ("hook_message", "hook_aggregation") if messages
                 for name in _optional_hook(model, h, t)]
        seen: dict[str, Tensor] = {}  # read without gradients: the leave-one-out aggregation needs them

        def keep(act: Tensor, hook: Any) -> None:
            seen[hook.name] = act.detach()

        with capture_round_inputs(model, range(num)) as inputs, model.hooks(fwd_hooks=[(h, keep) for h in extra]):
            out, cache = model.run_with_cache(graph, names_filter=outs, grad_metric=lambda o: metric(o, graph).mean(),
                                              **forward_kwargs)
        self.output = out
        self.baseline = float(metric(out, graph).detach().mean())
        self.cache, self.outs, self.seen = cache, outs, seen
        self.inputs = {t: {k: v.detach() if isinstance(v, Tensor) else v for k, v in kw.items()} for t, kw in inputs.items()}
        self._local: dict[int, LocalRound] = {}
        self._shapes: dict[Any, Shape] = {}
        self._sources_checked: set[Any] = set()

    def out(self, t: int) -> Tensor:
        return self.cache[self.outs[t]]

    def grad(self, t: int) -> Tensor:
        assert self.cache.grads is not None
        return self.cache.grads[self.outs[t]]

    def local(self, t: int) -> LocalRound:
        """Round ``t`` ready for local recomputation, its local subgraph checked against
        full calls of the round (:func:`~hookgnn.attribution.receptive.checked_round`)."""
        if t not in self._local:
            layer = self.model.round_module(t)
            path = next((p for p, m in self.model.named_modules() if m is layer), "")
            name = f"round {t}: {path or 'the model'}"
            sources = functools.partial(self.model.round_sources_replaced, t)
            rnd = LocalRound(layer, self.inputs[t], self.model.round_roles(t), sources=sources, name=name)
            key = _key(rnd)
            if key in self._shapes:  # a round of the same configuration was checked on this graph
                rnd.shape = self._shapes[key]
            else:
                self._shapes[key] = checked_round(rnd).shape
            self._local[t] = rnd
        return self._local[t]

    def message_round(self, t: int) -> LocalRound:
        """:meth:`local`, with single-message patches through ``hook_src`` checked too."""
        rnd = self.local(t)
        key = _key(rnd)
        if key not in self._sources_checked:
            check_sources(rnd)
            self._sources_checked.add(key)
        return rnd

    def carry(self, t: int, pert: Perturbation) -> Perturbation:
        """Changed outputs of round ``t`` as changed states entering round ``t + 1``."""
        between = self.model.between_rounds(t)
        if between is None:
            raise NotImplementedError(
                f"{type(self.model).__name__} runs code between round {t}'s output ({self.outs[t]}) and round "
                f"{t + 1}'s input ({self.model.state_hook(t + 1)}) that is not known to be node-wise, so rounds "
                "after the first cannot be recomputed locally: use exact_rounds=1")
        return Perturbation(pert.cand, pert.node, between(pert.state), pert.num)


def _key(rnd: LocalRound) -> tuple[Any, ...]:
    """Rounds with equal keys share one check of their local subgraph."""
    roles = rnd.roles
    return (configuration(rnd.layer), tuple(sorted(roles.input_roles.items())), roles.state_arg,
            roles.receptive_hops, roles.reach_hops)


def _optional_hook(model: HookedRootModule, short: str, t: int) -> list[str]:
    try:
        return [model.round_hook(short, t)]
    except KeyError:
        return []


def _message_round(model: HookedRootModule, run: _BaseRun, t: int, source_rows: Tensor) -> Perturbation:
    """The state of every message's receiver after round ``t`` with that message patched
    (``source_rows``: the source run's ``hook_src`` rows)."""
    from hookgnn.nn import HookedMessagePassing

    layer = model.round_module(t)
    inputs = run.inputs[t]
    edge_index = inputs["edge_index"]
    num_edges = edge_index.shape[1]
    every = torch.arange(num_edges, device=edge_index.device)
    dst = edge_index[1]
    fast = (isinstance(layer, HookedMessagePassing) and layer.rowwise_message and layer.aggr in _FAST
            and type(layer).aggregate is HookedMessagePassing.aggregate)
    if not fast:
        rnd = run.message_round(t)
        # the receivers, and what a round of several propagation steps passes them on to
        cand, targets = rnd.reach(Perturbation(every, dst, run.out(t)[dst], num_edges), rnd.shape.reach - 1)
        return rnd.run(cand, targets, None, num_edges,
                       edge_patch=(every, every, source_rows)).changed(run.out(t))
    hook_src, hook_msg = model.round_hook("hook_src", t), model.round_hook("hook_message", t)
    patched: dict[str, Tensor] = {}

    def read(act: Tensor, hook: Any) -> None:
        patched["m"] = act

    with model.hooks(fwd_hooks=[(hook_src, lambda act, hook: source_rows.to(act)), (hook_msg, read)]):
        layer(**inputs)
    msg = run.seen[hook_msg]
    aggr = run.seen[model.round_hook("hook_aggregation", t)]
    new_aggr = replace_one(msg, patched["m"], aggr, dst, layer.aggr)
    moved = (new_aggr != aggr[dst]).flatten(1).any(1)
    rows = dst[moved]
    h = inputs[layer.state_arg]
    state = layer.update_rows(new_aggr[moved], h[rows], inputs.get("x"), inputs.get("graph_attr"), inputs.get("batch"),
                              rows)
    return Perturbation(every[moved], rows, state, num_edges).changed(run.out(t))


def replace_one(
    msg: Float[Tensor, "edge d"],
    new: Float[Tensor, "edge d"],
    aggr: Float[Tensor, "node d"],
    dst: Int[Tensor, " edge"],
    reduce: str,
) -> Float[Tensor, "edge d"]:
    """For every edge ``e``: the aggregation at ``dst[e]`` with message ``e`` replaced by ``new[e]``.

    max/min: the aggregation without ``e`` is the runner-up where ``e`` is the winner
    (lowest index on ties) and the winner elsewhere; then the extreme of that and
    ``new[e]``. sum: :math:`a - m_e + m'_e`; mean: :math:`a + (m'_e - m_e) / \\deg`.

    >>> msg = torch.tensor([[1.], [3.], [2.]]); dst = torch.tensor([0, 0, 0])
    >>> replace_one(msg, torch.tensor([[0.], [0.], [5.]]), torch.tensor([[3.]]), dst, "max").flatten().tolist()
    [3.0, 2.0, 5.0]
    """
    if reduce in ("sum", "mean"):
        change = new - msg
        if reduce == "mean":
            deg = torch.bincount(dst, minlength=aggr.shape[0]).to(msg.dtype)
            change = change / deg[dst].reshape(-1, *([1] * (msg.dim() - 1)))
        return aggr[dst] + change
    largest = reduce == "max"
    _, arg = (scatter_max if largest else scatter_min)(msg, dst, aggr.shape[0])
    every = torch.arange(msg.shape[0], device=msg.device).reshape(-1, *([1] * (msg.dim() - 1)))
    winner = arg[dst] == every  # [edge, *d]
    fill = float("-inf") if largest else float("inf")
    # The extreme of the non-winners: the runner-up (±inf at a node whose only message is e).
    runner_up = scatter(msg.masked_fill(winner, fill), dst, aggr.shape[0], reduce)  # type: ignore[arg-type]
    without = torch.where(winner, runner_up[dst], aggr[dst])
    return torch.maximum(without, new) if largest else torch.minimum(without, new)


def _exact_tail(model: HookedRootModule, run: _BaseRun, pert: Perturbation, chunk: int) -> Tensor:
    """The exact metric change of every candidate whose final states are ``pert``."""
    scores = torch.zeros(pert.num, dtype=torch.float64)
    if pert.cand.numel() == 0:
        return scores
    final = run.out(len(run.outs) - 1)
    chunk = copies_per_forward(model, run.outs[-1:], chunk)
    moved = torch.unique(pert.cand)
    for _, group in chunks(moved, chunk):
        k = group.shape[0]
        slot = torch.full((pert.num,), -1, dtype=torch.long)
        slot[group] = torch.arange(k)
        mine = slot[pert.cand] >= 0
        states = final.repeat(k, 1)
        states[slot[pert.cand[mine]] * final.shape[0] + pert.node[mine]] = pert.state[mine].to(final)
        batch = disjoint_union([run.graph] * k)
        out = model.output_from_state(batch, states, run.output, k, **run.forward_kwargs)
        scores[group] = metric_per_copy(run.metric, out, batch, k).double().cpu() - run.baseline
    return scores
