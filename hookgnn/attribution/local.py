"""Exact local recomputation of message-passing rounds: the engine behind AtP*.

A patch that changes a few node states (or one message) changes, in the next round,
only the nodes those states reach. This module recomputes such rounds exactly, for
many candidate patches at once, without rerunning the whole graph per candidate:

* :func:`capture_round_inputs` records what each round's module was called with in a
  base run (its ``forward`` arguments, by name);
* a :class:`Perturbation` lists, per candidate ``c``, the nodes whose state differs from
  the base run and their new states;
* :func:`propagate` runs one round on the *local subgraph* of every candidate, all
  candidates in one disjoint-union call of the round's own module, and returns the
  perturbation after that round.

The local subgraph has a :class:`Shape`: a change travels ``reach`` hops downstream in
one call (the targets), and the output at a target :math:`w` is computed from the
in-edges (with ``out_edges``: and the out-edges) of every node fewer than ``hops`` hops
upstream of :math:`w`. A 1-hop layer with a sum over in-edges needs ``Shape(1, 1)``;
degree normalisation of the sources (GCN, LightGCN) ``Shape(1, 2)``; ``K`` propagation
steps in one call (SGConv, APPNP) ``Shape(K, K + 1)``; a normalisation by out-degrees
(ChebConv) ``out_edges``. The shape is not taken on trust:
:func:`~hookgnn.attribution.receptive.checked_round` starts from what the model says
(:meth:`~hookgnn.hooks.HookedRootModule.round_roles`), compares local recomputation with
full calls of the round on the graph at hand, widens the shape until they agree, and
raises :class:`~hookgnn.attribution.receptive.LocalRecomputeError` when none does.

How the module's ``forward`` arguments are indexed (``"node"``, ``"edge"``,
``"edge_index"``, passed through) is :class:`~hookgnn.rounds.RoundRoles`;
:class:`~hookgnn.nn.HookedMessagePassing` declares it, so a user's processor needs no
extra code, and a wrapped PyG model answers for its layers.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from hookgnn.hooks import HookedRootModule
from hookgnn.rounds import RoundRoles

#: ``sources(fn)``: a context in which a direct call of the round's module reads ``fn(src)`` at its ``hook_src``.
Sources = Callable[[Callable[[Tensor], Tensor]], AbstractContextManager[None]]


class Shape(NamedTuple):
    """The local subgraph of a round (see the module docstring).

    >>> Shape(2, 3, False).describe()
    'targets up to 2 hops downstream, in-edges of the targets and of the nodes up to 2 hops upstream'
    """

    reach: int
    hops: int
    out_edges: bool = False

    def describe(self) -> str:
        """The shape in words, for error messages."""
        edges = "in- and out-edges" if self.out_edges else "in-edges"
        up = self.hops - 1
        return (f"targets up to {self.reach} hop{'s' * (self.reach != 1)} downstream, {edges} of the targets"
                + (f" and of the nodes up to {up} hop{'s' * (up != 1)} upstream" if up else ""))


@contextmanager
def capture_round_inputs(model: HookedRootModule, rounds: Sequence[int]) -> Iterator[dict[int, dict[str, Any]]]:
    """Record the ``forward`` arguments (bound by name) of the given rounds' modules.

    The dict yielded fills in during the forward run inside the ``with`` block. A module
    that runs several rounds (weight tying by reuse) is recorded once per call, in call
    order. Forward pre-hooks are removed on exit, also when the forward raises.
    """
    found: dict[int, dict[str, Any]] = {}
    calls: dict[int, list[dict[str, Any]]] = {}
    by_module: dict[int, list[int]] = {}
    modules: dict[int, nn.Module] = {}
    for t in rounds:
        layer = model.round_module(t)
        by_module.setdefault(id(layer), []).append(t)
        modules[id(layer)] = layer
    handles = []
    for key, layer in modules.items():
        signature = inspect.signature(layer.forward)

        def record(module: nn.Module, args: tuple, kwargs: dict, key: int = key, signature=signature) -> None:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            calls.setdefault(key, []).append(dict(bound.arguments))

        handles.append(layer.register_forward_pre_hook(record, with_kwargs=True))
    try:
        yield found
        for key, ts in by_module.items():
            got = calls.get(key, [])
            if len(ts) == 1 and got:
                found[ts[0]] = got[-1]
            else:
                found.update({t: c for t, c in zip(sorted(ts), got)})
    finally:
        for h in handles:
            h.remove()


@dataclass
class Perturbation:
    """Changed node states of ``num`` candidates: candidate ``cand[r]`` has node ``node[r]``
    in state ``state[r]`` (every node not listed keeps its base state)."""

    cand: Int[Tensor, " row"]
    node: Int[Tensor, " row"]
    state: Float[Tensor, "row d"]
    num: int

    def delta(self, base: Float[Tensor, "node d"]) -> Float[Tensor, "row d"]:
        """``state - base[node]``: how far each listed state moved."""
        return self.state - base[self.node]

    def changed(self, base: Float[Tensor, "node d"]) -> Perturbation:
        """The rows whose state differs from the base at all (the others are dropped)."""
        keep = (self.state != base[self.node]).flatten(1).any(1)
        return Perturbation(self.cand[keep], self.node[keep], self.state[keep], self.num)

    def linearised(self, base: Float[Tensor, "node d"], grad: Float[Tensor, "node d"]) -> Float[Tensor, " cand"]:
        """First-order effect per candidate: :math:`\\sum_{w} (s_w - h_w) \\cdot g_w`."""
        per_row = (self.delta(base) * grad[self.node]).flatten(1).sum(1)
        return torch.zeros(self.num, dtype=per_row.dtype, device=per_row.device).index_add_(0, self.cand, per_row)


class _Incidence:
    """Edges grouped by one endpoint (CSR), to gather a node set's edges quickly."""

    def __init__(self, key: Tensor, num_nodes: int) -> None:
        self.order = torch.argsort(key, stable=True)
        self.deg = torch.bincount(key, minlength=num_nodes)
        self.start = torch.cumsum(self.deg, 0) - self.deg

    def of(self, cand: Tensor, node: Tensor) -> tuple[Tensor, Tensor]:
        """Every edge of every ``(cand, node)`` pair: ``(cand of the edge, edge id)``."""
        counts = self.deg[node]
        owner = torch.repeat_interleave(torch.arange(node.shape[0], device=node.device), counts)
        rank = torch.arange(owner.shape[0], device=node.device) - torch.repeat_interleave(
            torch.cumsum(counts, 0) - counts, counts)
        return cand[owner], self.order[self.start[node[owner]] + rank]


def _unique_pairs(a: Tensor, b: Tensor, width: int) -> tuple[Tensor, Tensor]:
    key = torch.unique(a * width + b)
    return key // width, key % width


@dataclass
class LocalRound:
    """One round's module and its base-run inputs, ready for local recomputation.

    ``shape``: the local subgraph (unchecked here; :func:`~hookgnn.attribution.receptive.checked_round`
    checks it). ``sources``: how to replace the round's ``hook_src`` in a direct call
    (:meth:`~hookgnn.hooks.HookedRootModule.round_sources_replaced`), for message patches.
    """

    layer: nn.Module
    inputs: dict[str, Any]
    roles: RoundRoles
    shape: Shape = Shape(1, 1)
    sources: Sources | None = None
    name: str = "round"
    _full: Tensor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.state_arg = self.roles.state_arg
        missing = [k for k in self.inputs if k not in self.roles.input_roles and self.inputs[k] is not None]
        if missing:
            raise TypeError(f"{self.name} ({type(self.layer).__name__}): its input roles do not say how arguments "
                            f"{missing} are indexed")
        if not all(isinstance(self.inputs.get(k), Tensor) for k in (self.state_arg, "edge_index")):
            raise TypeError(f"{self.name} ({type(self.layer).__name__}) was not called with a node-state tensor "
                            f"{self.state_arg!r} and an edge_index tensor, so it cannot be recomputed locally")
        self.edge_index = self.inputs["edge_index"]
        self.num_nodes = self.inputs[self.state_arg].shape[0]
        self.in_edges = _Incidence(self.edge_index[1], self.num_nodes)
        self.out_edges = _Incidence(self.edge_index[0], self.num_nodes)

    def subgraph(self, cand: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The local subgraphs of ``(cand, target node)`` pairs, as one disjoint union.

        Returns ``(edge_cand, edges, node_cand, nodes)``: the edges (ids in the full
        graph) and nodes of every candidate's subgraph, each with its candidate.
        """
        n, num_e = self.num_nodes, self.edge_index.shape[1]
        front_c, front_n = cand, targets
        seen = cand * n + targets
        parts_c, parts_e = [], []
        for level in range(self.shape.hops):
            e_c, e = self.in_edges.of(front_c, front_n)
            parts_c.append(e_c)
            parts_e.append(e)
            if self.shape.out_edges:
                o_c, o = self.out_edges.of(front_c, front_n)
                parts_c.append(o_c)
                parts_e.append(o)
            if level + 1 < self.shape.hops:
                front_c, front_n = _unique_pairs(e_c, self.edge_index[0, e], n)
                new = ~torch.isin(front_c * n + front_n, seen)
                front_c, front_n = front_c[new], front_n[new]
                seen = torch.cat([seen, front_c * n + front_n])
        if len(parts_e) == 1:
            e_cand, edges = parts_c[0], parts_e[0]
        else:
            e_cand, edges = _unique_pairs(torch.cat(parts_c), torch.cat(parts_e), num_e)
        ends_c = torch.cat([cand, e_cand, e_cand])
        ends_n = torch.cat([targets, self.edge_index[0, edges], self.edge_index[1, edges]])
        node_cand, nodes = _unique_pairs(ends_c, ends_n, n)
        return e_cand, edges, node_cand, nodes

    def full(self) -> Tensor:
        """The round's output on the whole graph with the base inputs (one call, kept)."""
        if self._full is None:
            self._full = first_output(self.layer(**self.inputs))
        return self._full

    def run(self, cand: Tensor, targets: Tensor, before: Perturbation | None, num: int,
            edge_patch: tuple[Tensor, Tensor, Tensor] | None = None) -> Perturbation:
        """The new states of ``targets`` after this round, for ``num`` candidates.

        ``before``: the candidates' changed states entering the round. ``edge_patch``:
        ``(cand, edge, row)``: that candidate's edge reads ``row`` at the round's
        ``hook_src`` instead of its base value (a single-message patch).
        """
        n = self.num_nodes
        e_cand, edges, node_cand, nodes = self.subgraph(cand, targets)
        keys = node_cand * n + nodes  # sorted (from torch.unique)
        local = lambda c, v: torch.searchsorted(keys, c * n + v)  # noqa: E731
        state = self.inputs[self.state_arg][nodes]
        if before is not None and before.cand.numel():
            where = local(before.cand, before.node)
            hit = (where < keys.shape[0]) & (keys[where.clamp(max=max(keys.shape[0] - 1, 0))] == before.cand * n + before.node)
            state = state.clone()
            state[where[hit]] = before.state[hit].to(state)
        args: dict[str, Any] = {}
        for name, value in self.inputs.items():
            role = self.roles.input_roles.get(name)
            if value is None or role == "pass":
                args[name] = value
            elif name == self.state_arg:
                args[name] = state
            elif role == "node":
                args[name] = value[nodes]
            elif role == "edge":
                args[name] = value[edges]
            elif role == "edge_index":
                args[name] = torch.stack([local(e_cand, self.edge_index[0, edges]), local(e_cand, self.edge_index[1, edges])])
            else:
                raise TypeError(f"unknown input role {role!r} for argument {name!r}")
        if edge_patch is None:
            out = first_output(self.layer(**args))
        else:
            if self.sources is None:
                raise TypeError(f"{self.name} ({type(self.layer).__name__}) has no hook_src to patch single messages "
                                "through")
            p_cand, p_edge, p_row = edge_patch
            ekeys = e_cand * self.edge_index.shape[1] + edges
            order = torch.argsort(ekeys)
            pos = order[torch.searchsorted(ekeys[order], p_cand * self.edge_index.shape[1] + p_edge)]

            def patch(act: Tensor) -> Tensor:
                act = act.clone()
                act[pos] = p_row.to(act)
                return act

            with self.sources(patch):
                out = first_output(self.layer(**args))
        return Perturbation(cand, targets, out[local(cand, targets)], num)

    def reach(self, before: Perturbation, steps: int | None = None) -> tuple[Tensor, Tensor]:
        """``(cand, node)`` pairs whose state this round can change: the changed nodes and
        every node up to ``steps`` (default ``shape.reach``) hops downstream of them. (A
        triplet message of ``u -> w`` that reads a middle node ``k`` lands on ``w``, an
        out-neighbour of ``k``, too.)"""
        n = self.num_nodes
        all_c, all_n = [before.cand], [before.node]
        c, v = before.cand, before.node
        for _ in range(self.shape.reach if steps is None else steps):
            out_c, out_e = self.out_edges.of(c, v)
            c, v = _unique_pairs(out_c, self.edge_index[1, out_e], n)
            all_c.append(c)
            all_n.append(v)
        return _unique_pairs(torch.cat(all_c), torch.cat(all_n), n)


def first_output(out: Any) -> Tensor:
    """A module's output tensor (the first element of a tuple such as ``(out, attention)``)."""
    return out[0] if isinstance(out, tuple) else out


def propagate(rnd: LocalRound, before: Perturbation) -> Perturbation:
    """The perturbation after one more round: exact new states of every node it can reach."""
    if before.cand.numel() == 0:
        return before
    cand, node = rnd.reach(before)
    return rnd.run(cand, node, before, before.num)
