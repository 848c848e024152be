"""Exact local recomputation of message-passing rounds: the engine behind AtP*.

A patch that changes a few node states (or one message) changes, in the next round,
only the nodes those states reach. This module recomputes such rounds exactly, for
many candidate patches at once, without rerunning the whole graph per candidate:

* :func:`capture_round_inputs` records what each round's module was called with in a
  base run (its ``forward`` arguments, by name);
* a :class:`Perturbation` lists, per candidate ``c``, the nodes whose state differs from
  the base run and their new states;
* :func:`propagate` runs one round on the *local subgraph* of every candidate (the
  in-edges of the nodes the change can reach, plus, for processors that look two hops
  back such as triplet messages, the in-edges of their sources), all candidates in one
  disjoint-union call of the round's own module, and returns the perturbation after
  that round. The result equals the full round at those nodes, because a round's
  output at node :math:`w` depends only on the in-edges of :math:`w` (and, with
  ``receptive_hops = 2``, of its in-neighbours).

A round module declares how its ``forward`` arguments are indexed in
``input_roles`` (``"node"``, ``"edge"``, ``"edge_index"``, anything else passed
through), which argument carries the node state (``state_arg``) and
``receptive_hops``; :class:`~hookgnn.nn.HookedMessagePassing` declares all three, so a
user's processor needs no extra code.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor, nn

from hookgnn.hooks import HookedRootModule
from hookgnn.rounds import registered_roles, registered_source_patch

def roles_of(layer: nn.Module) -> tuple[dict[str, str], str, int]:
    """``(input_roles, state_arg, receptive_hops)`` declared by a round module.

    A layer of another library gets what its adapter registered
    (:func:`hookgnn.rounds.register_round_kind`; :mod:`hookgnn.interop` registers PyTorch Geometric's).
    """
    roles = getattr(layer, "input_roles", None)
    if roles is not None:
        return dict(roles), getattr(layer, "state_arg", "h"), int(getattr(layer, "receptive_hops", 1))
    registered = registered_roles(layer)
    if registered is not None:
        return registered
    raise TypeError(f"{type(layer).__name__} does not declare input_roles, state_arg and receptive_hops, "
                    "so its rounds cannot be recomputed locally (see hookgnn.attribution.local)")


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
    """One round's module and its base-run inputs, ready for local recomputation."""

    layer: nn.Module
    inputs: dict[str, Any]

    def __post_init__(self) -> None:
        self.roles, self.state_arg, self.hops = roles_of(self.layer)
        missing = [k for k in self.inputs if k not in self.roles and self.inputs[k] is not None]
        if missing:
            raise TypeError(f"{type(self.layer).__name__}.input_roles does not say how arguments {missing} are indexed")
        edge_index = self.inputs["edge_index"]
        self.edge_index = edge_index
        self.num_nodes = self.inputs[self.state_arg].shape[0]
        self.in_edges = _Incidence(edge_index[1], self.num_nodes)
        self.out_edges = _Incidence(edge_index[0], self.num_nodes)

    def subgraph(self, cand: Tensor, targets: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The local subgraphs of ``(cand, target node)`` pairs, as one disjoint union.

        Returns ``(edge_cand, edges, node_cand, nodes)``: the edges (ids in the full
        graph) and nodes of every candidate's subgraph, each with its candidate.
        """
        n, num_e = self.num_nodes, self.edge_index.shape[1]
        e_cand, edges = self.in_edges.of(cand, targets)
        if self.hops >= 2:
            src_c, src_n = _unique_pairs(e_cand, self.edge_index[0, edges], n)
            more_c, more_e = self.in_edges.of(src_c, src_n)
            e_cand, edges = _unique_pairs(torch.cat([e_cand, more_c]), torch.cat([edges, more_e]), num_e)
        ends_c = torch.cat([cand, e_cand, e_cand])
        ends_n = torch.cat([targets, self.edge_index[0, edges], self.edge_index[1, edges]])
        node_cand, nodes = _unique_pairs(ends_c, ends_n, n)
        return e_cand, edges, node_cand, nodes

    def run(self, cand: Tensor, targets: Tensor, before: Perturbation | None, num: int,
            edge_patch: tuple[Tensor, Tensor, Tensor] | None = None, src_hook: str | None = None,
            model: HookedRootModule | None = None) -> Perturbation:
        """The new states of ``targets`` after this round, for ``num`` candidates.

        ``before``: the candidates' changed states entering the round. ``edge_patch``:
        ``(cand, edge, row)``: that candidate's edge reads ``row`` at ``src_hook``
        (the round's ``hook_src``) instead of its base value (a single-message patch).
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
            role = self.roles.get(name)
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
            out = self.layer(**args)
        else:
            p_cand, p_edge, p_row = edge_patch
            ekeys = e_cand * self.edge_index.shape[1] + edges
            order = torch.argsort(ekeys)
            pos = order[torch.searchsorted(ekeys[order], p_cand * self.edge_index.shape[1] + p_edge)]
            with _source_rows_patched(self.layer, pos, p_row, src_hook, model):
                out = self.layer(**args)
        return Perturbation(cand, targets, out[local(cand, targets)], num)

    def reach(self, before: Perturbation) -> tuple[Tensor, Tensor]:
        """``(cand, node)`` pairs whose state this round can change: the changed nodes and
        the targets of their out-edges. (A triplet message of ``u -> w`` that reads a
        middle node ``k`` lands on ``w``, an out-neighbour of ``k``, too.)"""
        out_c, out_e = self.out_edges.of(before.cand, before.node)
        return _unique_pairs(torch.cat([before.cand, out_c]), torch.cat([before.node, self.edge_index[1, out_e]]),
                             self.num_nodes)


@contextmanager
def _source_rows_patched(layer: nn.Module, pos: Tensor, rows: Tensor, src_hook: str | None,
                         model: HookedRootModule | None) -> Iterator[None]:
    """While the block runs ``layer``, edges ``pos`` read ``rows`` as their source state:
    through the round's ``hook_src`` (hookgnn processors), or what the layer's adapter
    registered (PyG's message pre-hook on the ``x_j`` argument: a wrapped model's ``hook_src``)."""

    def patch(act: Tensor) -> Tensor:
        act = act.clone()
        act[pos] = rows.to(act)
        return act

    if src_hook is not None and model is not None:
        with model.hooks(fwd_hooks=[(src_hook, lambda act, hook: patch(act))]):
            yield
        return
    patched = registered_source_patch(layer, patch)
    if patched is None:
        raise TypeError(f"{type(layer).__name__} has no hook_src to patch single messages through")
    with patched:
        yield


def propagate(rnd: LocalRound, before: Perturbation) -> Perturbation:
    """The perturbation after one more round: exact new states of every node it can reach."""
    if before.cand.numel() == 0:
        return before
    cand, node = rnd.reach(before)
    return rnd.run(cand, node, before, before.num)
