"""What a round reads, found and checked on the graph at hand instead of trusted.

Exact local recomputation (:mod:`hookgnn.attribution.local`) is right only when the local
subgraph holds everything the round's output at a target depends on: a layer that
normalises by its sources' degrees, takes several propagation steps per call or
normalises over the whole graph reads more than its receivers' in-edges. Rather than a
table of layer classes, :func:`checked_round` asks the model where to start
(:meth:`~hookgnn.hooks.HookedRootModule.round_roles`) and then compares, on the round's
own base-run inputs,

1. the local output of every node (a sample of 4096 on larger graphs) with one full
   call of the round (what the subgraph's *structure* gives: degrees, normalisations),
   on the base-run node states and on random ones (zero states would hide a
   normalisation);
2. after random changes to the state of one node, of another, and of a quarter of the
   nodes: the nodes whose output moves in a full call must lie within ``reach`` hops
   downstream, and their local outputs must equal the full call's.

It takes the first :class:`~hookgnn.attribution.local.Shape` of a short ladder (wider
upstream, out-edges too, one more hop downstream) that passes both, and raises
:class:`LocalRecomputeError` naming the layer, its class and the difference when none
does. :func:`check_sources` does the same for single-message patches through
``hook_src``. The probes are seeded: the same inputs give the same verdict.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator

import torch
from torch import Tensor, nn

from hookgnn.attribution.local import LocalRound, Perturbation, Shape, first_output

_SAMPLE = 4096
_SEED = 0


class LocalRecomputeError(NotImplementedError):
    """A round whose local recomputation differs from a full call of it (AtP* cannot be exact there)."""


def ladder(start: Shape) -> Iterator[Shape]:
    """The shapes tried, narrowest first: upstream ``hops`` and one more, in-edges then
    in- and out-edges, for ``reach`` and one more hop downstream.

    >>> [tuple(s) for s in ladder(Shape(1, 1))][:4]
    [(1, 1, False), (1, 1, True), (1, 2, False), (1, 2, True)]
    """
    for reach in (start.reach, start.reach + 1):
        low = max(start.hops, reach)
        for hops in (low, low + 1):
            for out_edges in (False, True):
                yield Shape(reach, hops, out_edges)


def checked_round(rnd: LocalRound) -> LocalRound:
    """Set ``rnd.shape`` to the narrowest shape whose local recomputation equals full calls
    of the round (see the module docstring); raise :class:`LocalRecomputeError` if none does.

    >>> from hookgnn.nn import MPNN
    >>> from hookgnn.rounds import declared_roles
    >>> layer = MPNN(2)
    >>> h = torch.randn(4, 2)
    >>> inputs = {"h": h, "edge_index": torch.tensor([[0, 1, 2], [1, 2, 3]]), "x": h}
    >>> tuple(checked_round(LocalRound(layer, inputs, declared_roles(layer))).shape)
    (1, 1, False)
    """
    roles = rnd.roles
    start = Shape(max(1, roles.reach_hops), max(1, roles.receptive_hops))
    if rnd.num_nodes == 0:
        rnd.shape = start
        return rnd
    probe = _Probes(rnd)
    tried, failure = [], ""
    for shape in ladder(start):
        rnd.shape = shape
        tried.append(shape)
        try:
            failure = probe.failure()
        except Exception as e:  # e.g. a layer that cached its full-graph normalisation (cached=True)
            failure = f"a call of the layer on the local subgraph ({shape.describe()}) raised {type(e).__name__}: {e}"
        if not failure:
            return rnd
    raise LocalRecomputeError(
        f"{rnd.name} ({type(rnd.layer).__name__}) cannot be recomputed locally, so AtP* would not be exact there: "
        f"{failure}. Tried {len(tried)} local subgraphs, from {tried[0].describe()} to {tried[-1].describe()}. The "
        "layer reads more than a neighbourhood of its receivers (a normalisation over the whole graph, one cached from "
        "an earlier call such as cached=True, or randomness such as dropout in training mode: call model.eval()). "
        "Use exact patching instead (patch(model, clean, corrupted, metric, messages(model)), or nodes(...) / "
        "hooks(...) of the round outputs); a layer of your own can declare input_roles, state_arg, receptive_hops "
        "and reach_hops (hookgnn.rounds.RoundRoles)")


def check_sources(rnd: LocalRound) -> None:
    """Raise :class:`LocalRecomputeError` unless replacing one message's ``hook_src`` row in
    a local call of the round gives what the same replacement gives in a full call
    (two random edges, seeded)."""
    num_edges = rnd.edge_index.shape[1]
    if num_edges == 0 or rnd.sources is None:
        return
    gen = torch.Generator().manual_seed(_SEED)
    seen: list[Tensor] = []

    def record(act: Tensor) -> Tensor:
        seen.append(act)
        return act

    with rnd.sources(record):
        rnd.layer(**rnd.inputs)
    if not seen:
        raise LocalRecomputeError(f"{rnd.name} ({type(rnd.layer).__name__}) never read its hook_src in a direct call, "
                                  "so single messages cannot be patched there: use exact patching, "
                                  "patch(..., messages(model))")
    src = seen[0]
    full0 = rnd.full()
    for e in torch.randint(0, num_edges, (2,), generator=gen).tolist():
        row = src[e] + _noise(src[e], gen, _spread(src))

        def put(act: Tensor, e: int = e, row: Tensor = row) -> Tensor:
            act = act.clone()
            act[e] = row.to(act)
            return act

        with rnd.sources(put):
            full = first_output(rnd.layer(**rnd.inputs))
        zero = torch.zeros(1, dtype=torch.long, device=src.device)
        start = Perturbation(zero, rnd.edge_index[1, e:e + 1], full0[rnd.edge_index[1, e:e + 1]], 1)
        cand, targets = rnd.reach(start, rnd.shape.reach - 1)
        local = rnd.run(cand, targets, None, 1, edge_patch=(zero, torch.tensor([e], device=src.device), row[None]))
        problem = _compare(rnd, full0, full, targets, local.state, f"replacing the hook_src row of edge {e}")
        if problem:
            raise LocalRecomputeError(f"{rnd.name} ({type(rnd.layer).__name__}): {problem}, so single-message "
                                      "patches cannot be recomputed locally there; use exact patching, "
                                      "patch(..., messages(model))")


def configuration(module: nn.Module) -> Hashable:
    """What makes two modules behave alike apart from their weights' values: the class,
    the plain settings (numbers, strings, flags; hook points' names aside) and the
    parameter shapes of the module and of every submodule. Rounds of one AtP* run whose
    modules share a configuration share one check.

    >>> configuration(nn.Linear(2, 3)) == configuration(nn.Linear(2, 3)) != configuration(nn.Linear(3, 3))
    True
    """
    parts: list[Hashable] = []
    for path, m in module.named_modules():
        plain = sorted((k, v) for k, v in vars(m).items()
                       if not k.startswith("_") and k != "name" and _plain(v))
        shapes = tuple((k, tuple(p.shape)) for k, p in m.named_parameters(recurse=False) if p is not None)
        parts.append((path, type(m), tuple(plain), shapes))
    return tuple(parts)


def _plain(v: object) -> bool:
    if isinstance(v, tuple):
        return all(_plain(x) for x in v)
    return v is None or isinstance(v, (bool, int, float, str))


class _Probes:
    """Full calls of the round, made once and compared with every shape tried: on the
    base-run inputs, and on the same inputs with every node state replaced by noise (a
    base state of zeros would hide what a normalisation reads)."""

    def __init__(self, rnd: LocalRound) -> None:
        self.rnd = rnd
        n = rnd.num_nodes
        gen = torch.Generator().manual_seed(_SEED)
        device = rnd.edge_index.device
        self.targets = torch.arange(n, device=device)
        if n > _SAMPLE:
            self.targets = torch.randperm(n, generator=gen)[:_SAMPLE].sort().values.to(device)
        state = rnd.inputs[rnd.state_arg]
        spread = _spread(state)
        noisy = LocalRound(rnd.layer, {**rnd.inputs, rnd.state_arg: _noise(state, gen, spread)}, rnd.roles, rnd.shape,
                           name=rnd.name)
        self.worlds: list[tuple[LocalRound, str, list[tuple[Tensor, Tensor, Tensor]]]] = []
        for world, what in ((rnd, "base-run"), (noisy, "random")):
            changes = []
            base = world.inputs[world.state_arg]
            for size in (1, 1, max(1, n // 4)):
                nodes = torch.randperm(n, generator=gen)[:size].sort().values.to(device)
                new = base[nodes] + _noise(base[nodes], gen, spread)
                changed = base.clone()
                changed[nodes] = new
                changes.append((nodes, new, first_output(world.layer(**{**world.inputs, world.state_arg: changed}))))
            self.worlds.append((world, what, changes))

    def failure(self) -> str:
        """What differs with the current shape, in words ("" when nothing does)."""
        k = self.targets.shape[0]
        for world, what, changes in self.worlds:
            world.shape = self.rnd.shape
            full0 = world.full()
            local = world.run(torch.arange(k, device=self.targets.device), self.targets, None, k)
            problem = _compare(world, full0, full0, self.targets, local.state, f"with the {what} node states")
            if problem:
                return problem
            for nodes, new, full in changes:
                before = Perturbation(torch.zeros_like(nodes), nodes, new, 1)
                cand, targets = world.reach(before)
                local = world.run(cand, targets, before, 1)
                shown = ", ".join(str(v) for v in nodes[:3].tolist()) + (", ..." if nodes.shape[0] > 3 else "")
                problem = _compare(world, full0, full, targets, local.state,
                                   f"changing the state of node(s) {shown} from the {what} node states")
                if problem:
                    return problem
        return ""


def _compare(rnd: LocalRound, full0: Tensor, full: Tensor, targets: Tensor, local: Tensor, what: str) -> str:
    """"" when ``local`` equals ``full`` at ``targets`` and ``full`` equals ``full0`` elsewhere."""
    scale = max(float(full0.abs().max()) if full0.numel() else 0.0, float(full.abs().max()) if full.numel() else 0.0)
    tol = 1e3 * torch.finfo(full.dtype).eps * scale
    outside = torch.ones(full.shape[0], dtype=torch.bool, device=full.device)
    outside[targets] = False
    rows = lambda t: t.reshape(t.shape[0], -1).abs().amax(1) if t.numel() else t.new_zeros(t.shape[0])  # noqa: E731
    moved = rows(full - full0)
    far = torch.nonzero(outside & (moved > tol)).flatten()
    if far.numel():
        w = int(far[0])
        return (f"{what} moves the output of node {w} by {float(moved[w]):.3g} in a full call, but node {w} is not "
                f"within {rnd.shape.reach} hop(s) downstream")
    diff = rows(local.to(full) - full[targets])
    bad = torch.nonzero(diff > tol).flatten()
    if bad.numel():
        i = int(bad[0])
        return (f"{what}, the output of node {int(targets[i])} computed from the local subgraph "
                f"({rnd.shape.describe()}) "
                f"differs from a full call of the layer by {float(diff[i]):.3g} (largest output {scale:.3g})")
    return ""


def _noise(like: Tensor, gen: torch.Generator, spread: float) -> Tensor:
    """Standard normal noise of ``like``'s shape, dtype and device, times ``spread``."""
    return torch.randn(like.shape, generator=gen, dtype=torch.float64).to(like.device, like.dtype) * spread


def _spread(t: Tensor) -> float:
    """The largest entry of ``t`` in absolute value, at least 1: the scale of the noise."""
    return max(float(t.abs().max()) if t.numel() else 0.0, 1.0)
