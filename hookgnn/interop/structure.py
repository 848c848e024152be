"""What the discovery forward of a wrapped PyG model found: rounds, hook names, axes, links.

Names (module paths, as everywhere in hookgnn):

====================================  =================================================
``convs.0.hook_input``                node features the module was called with (``x``)
``convs.0.hook_src``                  ``x_j`` as read by each edge (edge axis)
``convs.0.hook_message``              ``message()``'s output (edge axis)
``convs.0.hook_aggregation``          ``aggregate()``'s output (node axis)
``convs.0.hook_update``               ``update()``'s output (= ``propagate()``'s)
``convs.0.hook_edge_update``          ``edge_update()``'s output, where the layer has one
``convs.0.hook_output``               the module's output
``convs.0.msg.0.hook_out``            output of the leaf ``Linear`` / activation ``msg.0``
``hook_x``, ``hook_s``                the floating-point inputs the forward reads (arguments,
                                      or attributes of a ``Data`` argument)
``act.hook_out``                      a leaf module called outside any round
====================================  =================================================

A module called ``n > 1`` times per forward (a weight-tied loop) gets one container per
call, in call order: ``conv.calls.3.hook_message``, ``conv.calls.3.mlp.0.hook_out``.
A leaf called several times in one round (or outside rounds) gets ``.calls.{j}`` the
same way (``act.calls.1.hook_out``). A leaf called outside rounds belongs to the round it
follows (PyG's ``BasicGNN`` calls one shared ``act`` after each conv: ``act.calls.t.hook_out``
is in round ``t``, at ``act.hook_out``); one called before the first round, to none. A module whose ``forward`` calls ``propagate``
again has ``propagate.{p}.hook_message`` etc. for the later calls. A leaf that lives in a
``MessagePassing`` module but runs outside its calls is ``{path}.outside.hook_out``.

Round ``t`` is the ``t``-th call of any ``MessagePassing`` module; its hook points are
those under its container, and their path inside the round (``hook_message``,
``msg.0.hook_out``) is what :meth:`~hookgnn.hooks.HookedRootModule.counterparts` matches.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import weakref

import torch
from torch import Tensor, nn

from hookgnn._deprecated import deprecated_names
from hookgnn.interop.inputs import Counts
from hookgnn.interop.session import Frame, StructureError, describe
from hookgnn.interop.trace import Segment, Tracer
from hookgnn.nn.wiring import ResolvedLink

#: PyG aggregation names that a hookgnn ``scatter`` reproduces feature by feature.
REDUCE = {"add": "sum", "sum": "sum", "mean": "mean", "min": "min", "max": "max"}


def choose_axis(rows: int, prefer: str | None, counts: Counts) -> str:
    """The axis of an activation with ``rows`` rows. With ``prefer`` (what the rows are,
    known from where the activation is made: ``"edge"`` inside ``message``): ``prefer``
    when the call's count matches (or is unknown), else ``"none"`` (e.g. messages over a
    layer's own edge list with added self-loops). Without: the first of node, edge,
    graph whose count matches, else ``"none"``.

    >>> c = Counts(3, 5, 1, None)
    >>> choose_axis(5, "edge", c), choose_axis(3, "edge", c), choose_axis(3, None, c)
    ('edge', 'none', 'node')
    """
    sizes = {"node": counts.nodes, "edge": counts.edges, "graph": counts.graphs}
    if prefer is not None:
        return prefer if sizes.get(prefer) in (None, rows) else "none"
    return next((a for a in ("node", "edge", "graph") if sizes[a] == rows), "none")


@dataclass
class _Traced:
    key: Hashable
    segments: list[Segment]
    linear: nn.Module | None
    width: int | None
    round: int | None
    started: int
    same_edges: bool


class Discovery:
    """Records the discovery forward (the :class:`~hookgnn.interop.session.Recorder`)."""

    def __init__(self, counts: Counts, tracer: Tracer) -> None:
        self.counts, self.tracer = counts, tracer
        self.axes: dict[Hashable, str] = {}
        self.rounds: list[Frame] = []
        self.traced: list[_Traced] = []
        self.same_edges: dict[int, bool] = {}
        self.propagated: set[int] = set()
        self.fired: list[tuple[Hashable, weakref.ref[Tensor], int]] = []

    def round_started(self, frame: Frame) -> None:
        self.rounds.append(frame)

    def propagating(self, frame: Frame) -> None:
        self.propagated.add(frame.t)
        ei, top = frame.edge_index, self.counts.edge_index
        same = top is None or (ei is not None and ei.shape == top.shape and bool(torch.equal(ei, top)))
        self.same_edges[frame.t] = self.same_edges.get(frame.t, True) and same

    def site(self, key: Hashable, t: Tensor, prefer: str | None, frame: Frame | None,
             linear: nn.Module | None, linear_input: Tensor | None) -> Tensor:
        """Record ``key``'s activation ``t`` and trace its sources; returns what the forward
        goes on with. ``hook_input`` and ``hook_src`` replace a value for one consumer only
        (the module's call, the message), so they get an alias of ``t`` there: code that
        still holds ``t`` (a skip connection) is traced to ``t``'s own hook, not to them."""
        if key in self.axes:
            raise StructureError(f"{describe(key)} was reached twice in one forward")
        self.tracer.quiet = True  # what discovery itself does to t is not the model's doing
        try:
            return self._site(key, t, prefer, frame, linear, linear_input)
        finally:
            self.tracer.quiet = False

    def _site(self, key: Hashable, t: Tensor, prefer: str | None, frame: Frame | None,
              linear: nn.Module | None, linear_input: Tensor | None) -> Tensor:
        self.axes[key] = choose_axis(t.shape[0] if t.dim() else 0, prefer, self.counts)
        if prefer == "edge" and frame is not None and not self.same_edges.get(frame.t, True):
            # rows of the layer's own edge list (self-loops added, edges reordered): not graph
            # edge e at row e, even when the counts happen to agree
            self.axes[key] = "none"
        ei = frame.edge_index if frame is not None and frame.edge_index is not None else self.counts.edge_index
        source = linear_input if linear is not None else t
        segments = [] if source is None else self.tracer.sources(source, ei)
        same = frame is None or frame.edge_index is None or self.same_edges.get(frame.t, True)
        self.traced.append(_Traced(key, segments, linear, t.shape[1] if t.dim() == 2 else None,
                                   None if frame is None else frame.t, len(self.rounds), same))
        if key[0] == "round" and key[4] in ("hook_input", "hook_src"):  # type: ignore[index]
            t = t.view_as(t)
        self.tracer.mark(key, t)
        self.fired.append((key, weakref.ref(t), t._version))
        return t

    def edited(self) -> set[Hashable]:
        """Hook keys whose activation the model edited in place after the hook saw it
        (``h += e``), by the tracer or, for tensors still alive, by their version counter."""
        late = {key for key, ref, v in self.fired if (t := ref()) is not None and t._version != v}
        return late | self.tracer.edited

    def unread(self) -> set[Hashable]:
        """Input keys that no operation of the forward read (an ``edge_weight`` the model ignores)."""
        linked = {s.key for tr in self.traced for s in tr.segments}
        return {k for k in self.axes if k[0] == "input" and k not in self.tracer.read and k not in linked}  # type: ignore[index]


@dataclass(frozen=True)
class LinkSpec:
    """A traced link of round ``round``, by hook keys. ``blocks`` are ``(Linear, first input
    column, end column, first source column)``: the weight is read from the module when
    resolved, so later training shows. ``select`` are ``(first dst column, first source
    column, width)`` of a 0/1 selection (a concatenation); neither: elementwise."""

    round: int
    src: Hashable
    dst: Hashable
    rows: str
    act: Any
    d_src: int
    d_dst: int
    blocks: tuple[tuple[nn.Module, int, int, int], ...] = ()
    select: tuple[tuple[int, int, int], ...] = ()
    reduce: str | None = None

    def weight(self, like: Tensor | None = None) -> Tensor | None:
        """``W`` of shape ``[d_dst, d_src]``, or ``None`` for an elementwise link (a selection
        gets the dtype and device of ``like``)."""
        if self.blocks:
            first = self.blocks[0][0].weight
            w = torch.zeros(self.d_dst, self.d_src, dtype=first.dtype, device=first.device)
            for module, c0, c1, s0 in self.blocks:
                w[:, s0:s0 + c1 - c0] += module.weight.detach()[:, c0:c1]
            return w
        if self.select:
            w = torch.zeros(self.d_dst, self.d_src) if like is None else like.new_zeros(self.d_dst, self.d_src)
            for d0, s0, width in self.select:
                w[torch.arange(d0, d0 + width), torch.arange(s0, s0 + width)] = 1.0
            return w
        return None


class HookLayout:
    """Rounds, names, axes and link specs of a wrapped model, from its discovery forward."""

    def __init__(self, disc: Discovery, mp_paths: set[str]) -> None:
        self.rounds = [(f.path, f.k, f.module) for f in disc.rounds]
        self.propagations = [f.hop + 1 for f in disc.rounds]  # propagate calls per round
        self.opaque = {f.path: type(f.module).__name__ for f in disc.rounds if f.t not in disc.propagated}
        unread = disc.unread()
        self.axes = {k: a for k, a in disc.axes.items() if k not in unread}
        self.edited = frozenset(disc.edited() - unread)
        per_path = Counter(p for p, _, _ in self.rounds)
        index = {(p, k): t for t, (p, k, _) in enumerate(self.rounds)}
        multi = {(key[1], key[3]) for key in disc.axes if key[0] == "leaf" and key[4] > 0}  # type: ignore[index]
        multi_free = {key[1] for key in disc.axes if key[0] == "free" and key[2] > 0}  # type: ignore[index]

        def prefix(path: str, k: int) -> str:
            return _join(path, f"calls.{k}" if per_path[path] > 1 else "")

        # a leaf called outside rounds belongs to the round it follows (PyG's BasicGNN calls
        # one shared act after every conv); calls before the first round belong to none
        follows = {tr.key: tr.started - 1 for tr in disc.traced if tr.key[0] == "free"}  # type: ignore[index]
        per_gap = Counter((follows[k], k[1]) for k in self.axes if k in follows)  # type: ignore[index]
        multi_gap = {leaf for (_, leaf), n in per_gap.items() if n > 1}
        seen_in_gap: Counter[tuple[int, str]] = Counter()

        self.names: dict[Hashable, str] = {}
        self.places: dict[str, tuple[int, str]] = {}
        for key in self.axes:
            kind = key[0]  # type: ignore[index]
            if kind == "input":
                name = f"hook_{key[1]}"  # type: ignore[index]
            elif kind == "free":
                _, leaf, j = key  # type: ignore[misc]
                inside = any(m == "" or leaf.startswith(m + ".") for m in mp_paths)
                name = _join(leaf or "model", "outside" if inside else "", f"calls.{j}" if leaf in multi_free else "",
                             "hook_out")
                t_after = follows.get(key, -1)
                if t_after >= 0:
                    i = seen_in_gap[(t_after, leaf)]
                    seen_in_gap[(t_after, leaf)] += 1
                    self.places[name] = (t_after, _join(leaf or "model", "outside" if inside else "",
                                                        f"calls.{i}" if leaf in multi_gap else "", "hook_out"))
            else:
                path, k = key[1], key[2]  # type: ignore[index]
                if kind == "round":
                    hop, what = key[3], key[4]  # type: ignore[index]
                    rel = _join(f"propagate.{hop}" if hop else "", what)
                else:
                    leaf, j = key[3], key[4]  # type: ignore[index]
                    rel = _join(leaf[len(path) + 1:] if path else leaf, f"calls.{j}" if (path, leaf) in multi else "",
                                "hook_out")
                name = _join(prefix(path, k), rel)
                self.places[name] = (index[(path, k)], rel)
            if name in self.names.values():
                other = next(k for k, v in self.names.items() if v == name)
                raise StructureError(f"{describe(key)} and {describe(other)} would both be named {name!r}; "
                                     "rename the module or argument whose name collides")
            self.names[key] = name
        self.links = _links(disc, self.rounds)

    def resolve(self, t: int, like: Tensor | None = None) -> list[ResolvedLink]:
        """The links of round ``t`` with hook names and weights read now (selections get
        the dtype and device of ``like``)."""
        out, seen = [], set()
        for spec in self.links:
            if spec.round != t:
                continue
            src, dst = self.names[spec.src], self.names[spec.dst]
            name = f"{src}->{dst}" if spec.rows == "same" else f"{src}[{spec.rows}]->{dst}"
            if name in seen:  # pragma: no cover - links are grouped by (src, rows, dst)
                raise StructureError(f"two traced links are both named {name!r}")
            seen.add(name)
            out.append(ResolvedLink(t, name, src, dst, spec.rows, spec.weight(like), spec.act, reduce=spec.reduce,
                                    selection=bool(spec.select)))
        return out


def _join(*parts: str) -> str:
    return ".".join(p for p in parts if p)


def _links(disc: Discovery, rounds: list[tuple[str, int, nn.Module]]) -> list[LinkSpec]:
    """Link specs from the traced sources of every hook (see :mod:`hookgnn.interop.trace`)."""
    widths = disc.tracer.widths
    if not rounds:
        return []
    out: list[LinkSpec] = []
    for tr in disc.traced:
        if tr.width is None:
            continue
        owner = tr.round if tr.round is not None else min(max(tr.started - 1, 0), len(rounds) - 1)
        usable = [s for s in tr.segments if (s.rows == "same" or tr.same_edges) and s.key != tr.key]
        groups: dict[tuple[Hashable, str], list[Segment]] = {}
        if tr.linear is not None:
            for s in usable:
                if s.act is None:
                    groups.setdefault((s.key, s.rows), []).append(s)
            for (src, rows), segs in groups.items():
                blocks = tuple((tr.linear, s.start, s.stop, s.src_start) for s in segs)
                out.append(LinkSpec(owner, src, tr.key, rows, "identity", segs[0].src_width, tr.width, blocks=blocks))
            continue
        for s in usable:
            if s.start == s.src_start == 0 and s.stop == s.src_width == tr.width:
                out.append(LinkSpec(owner, s.key, tr.key, s.rows, s.act or "identity", s.src_width, tr.width))
            elif s.act is None:
                groups.setdefault((s.key, s.rows), []).append(s)
        for (src, rows), segs in groups.items():
            sel = tuple((s.start, s.src_start, s.stop - s.start) for s in segs)
            out.append(LinkSpec(owner, src, tr.key, rows, "identity", segs[0].src_width, tr.width, select=sel))
    for t, (path, k, module) in enumerate(rounds):
        aggr = getattr(module, "aggr", None)
        if not (isinstance(aggr, str) and aggr in REDUCE and getattr(module, "flow", "") == "source_to_target"
                and disc.same_edges.get(t, False)):
            continue
        for key in disc.axes:
            if key[0] == "round" and key[1] == path and key[2] == k and key[4] == "hook_message":  # type: ignore[index]
                agg = ("round", path, k, key[3], "hook_aggregation")  # type: ignore[index]
                w = widths.get(key)
                if agg in disc.axes and w is not None and widths.get(agg) == w:
                    out.append(LinkSpec(t, key, agg, "scatter", "identity", w, w, reduce=REDUCE[aggr]))
    return out


#: The 0.1 name of :class:`HookLayout` (metamers had a public ``Structure`` too); warns on access.
__getattr__ = deprecated_names("hookgnn.interop.structure",
                               {"Structure": (lambda: HookLayout, "hookgnn.interop.structure.HookLayout")})
