"""The search space of a batch of metamers: parametrised features and edge gates.

A :class:`SearchSpace` holds the raw tensors the optimiser moves (feature blocks of ``x``
and ``edge_attr``, edge logits) for ``num`` metamers of an ``n``-node reference, and
turns them into graphs:

* :meth:`SearchSpace.forward_graph`: the graph the model runs on during the search
  (with a structure search: every candidate edge, plus the relaxation hooks of
  :mod:`hookgnn.metamers.relax`), and
* :meth:`SearchSpace.hard_graph`: the valid metamer graphs (a ``Graph`` batch, built
  through the ``Graph`` constructor, so validated), detached.

Every raw tensor's rows belong to one metamer (``owner``), so metamers that reached
the tolerance can be frozen while the others go on.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.hooks import HookSpec
from hookgnn.metamers.constraints import Constraint
from hookgnn.metamers.relax import EdgeGates, EdgeSpace, MessageSite, relaxation_hooks


class FeatureParams:
    """Feature rows ``base`` [R, F] whose column blocks are optimised under their constraints.

    Rows in ``frozen`` keep their ``base`` values.
    """

    def __init__(self, base: Tensor, owner: Int[Tensor, " row"], num: int,
                 blocks: Sequence[tuple[Constraint, int, int]], what: str, frozen: Tensor | None = None) -> None:
        self.base, self.owner, self.num, self.frozen = base.detach(), owner, num, frozen
        self.blocks = sorted(blocks, key=lambda blk: blk[1])
        self.raw: list[Tensor] = []
        for c, a, b in self.blocks:
            c.check(self.base[:, a:b], owner, num, f"{what}[:, {a}:{b}]")
            self.raw.append(c.raw(self.base[:, a:b], owner, num).requires_grad_())

    def value(self) -> Tensor:
        """The current features (straight-through where discrete)."""
        if not self.blocks:
            return self.base
        pieces, col = [], 0
        for (c, a, b), raw in zip(self.blocks, self.raw):
            pieces.append(self.base[:, col:a])
            v = c.value(raw, self.owner, self.num)
            if self.frozen is not None:
                v = torch.where(self.frozen.unsqueeze(1), self.base[:, a:b], v)
            pieces.append(v)
            col = b
        pieces.append(self.base[:, col:])
        return torch.cat(pieces, dim=1)

    def project_(self) -> None:
        for (c, _, _), raw in zip(self.blocks, self.raw):
            c.project_(raw)


class SearchSpace:
    """The parametrised graphs of ``num`` metamers that start at ``starts`` (see the module doc)."""

    def __init__(
        self,
        starts: Graph,
        n: int,
        node_blocks: Sequence[tuple[Constraint, int, int]],
        edge_blocks: Sequence[tuple[Constraint, int, int]],
        fixed_nodes: Int[Tensor, " fixed"],
        structure: EdgeSpace | None = None,
        sites: Sequence[MessageSite] = (),
        random_edges: torch.Generator | None = None,
        fill: Tensor | None = None,
    ) -> None:
        """``random_edges``: draw the start edge sets (and candidate edge features) at
        random with this generator instead of taking them from ``starts``; ``fill``: edge
        features of candidates that no start edge provides."""
        self.num, self.n, self.structure, self.sites = starts.num_graphs, n, structure, list(sites)
        self.ptr, self.graph_attr = starts.ptr, starts.graph_attr
        frozen = None
        if fixed_nodes.numel():
            frozen = torch.zeros(starts.num_nodes, dtype=torch.bool, device=starts.device)
            frozen.view(self.num, n)[:, fixed_nodes] = True
        self.x = FeatureParams(starts.x, starts.batch, self.num, node_blocks, "x", frozen)
        self.gates: EdgeGates | None = None
        if structure is None:
            self.edge_index = starts.edge_index
            self.e = None if starts.edge_attr is None else FeatureParams(
                starts.edge_attr, starts.edge_batch, self.num, edge_blocks, "edge_attr")
            return
        self.gates = EdgeGates(structure, n, self.num)
        if random_edges is not None:
            ref_mask = self.gates.mask_of(starts.graph(0).edge_index, "the reference")
            free = ~self.gates.keep
            self.gates.random_start(float((ref_mask & free).sum()) / max(int(free.sum()), 1), random_edges)
        else:
            self.gates.start_from(torch.stack([self.gates.mask_of(g.edge_index, f"start graph {j}")
                                               for j, g in enumerate(starts.split())]))
        self.gates.to(starts.device)
        cand = self.gates.cand
        offsets = (torch.arange(self.num, device=starts.device) * n).repeat_interleave(cand.shape[1])
        self.edge_index = cand.repeat(1, self.num) + offsets
        self.e = None
        if starts.edge_attr is not None:
            attr = self._candidate_attr(starts, cand, fill)
            owner = torch.arange(self.num, device=starts.device).repeat_interleave(cand.shape[1])
            if random_edges is not None:  # a noise start: every candidate's optimised features at random
                for c, a, b in edge_blocks:
                    attr[:, a:b] = c.noise(attr[:, a:b], owner, self.num, random_edges)
            self.e = FeatureParams(attr, owner, self.num, edge_blocks, "candidate edge_attr")

    def _candidate_attr(self, starts: Graph, cand: Tensor, fill: Tensor | None) -> Tensor:
        """Edge features of every candidate: the start's where the start has that edge (its
        first copy), else ``fill`` (default: the column means of the start's features)."""
        n, num_c = self.n, cand.shape[1]
        ea = starts.edge_attr
        assert ea is not None
        if fill is None:
            fill = ea.mean(0) if ea.shape[0] else ea.new_zeros(ea.shape[1])
        attr = fill.to(ea.dtype).expand(self.num * num_c, ea.shape[1]).clone()
        table = torch.full((n * n,), -1, dtype=torch.long, device=cand.device)
        table[cand[0] * n + cand[1]] = torch.arange(num_c, device=cand.device)
        src, dst = starts.edge_index
        g = starts.edge_batch
        local = table[(src - g * n) * n + (dst - g * n)]
        ok = local >= 0
        rows = g[ok] * num_c + local[ok]
        order = torch.arange(rows.shape[0], device=rows.device)
        first = torch.full((self.num * num_c,), rows.shape[0], dtype=torch.long, device=rows.device)
        first = first.scatter_reduce(0, rows, order, "amin")  # the first copy of parallel edges
        keep = first[rows] == order
        attr[rows[keep]] = ea[ok][keep]
        return attr

    # ------------------------------------------------------------------ graphs
    def _edge_values(self) -> Tensor | None:
        return None if self.e is None else self.e.value()

    def forward_graph(self) -> tuple[Graph, list[HookSpec]]:
        """The graph the search runs the model on, and the hooks to attach (relaxation)."""
        graph = Graph(x=self.x.value(), edge_index=self.edge_index, edge_attr=self._edge_values(),
                      graph_attr=self.graph_attr, ptr=self.ptr)
        if self.gates is None:
            return graph, []
        return graph, relaxation_hooks(self.sites, self.gates.gates(), self.edge_index[1], graph.num_nodes)

    def hard_graph(self, masks: Bool[Tensor, "num cand"] | None = None) -> Graph:
        """The valid metamer graphs now (or with the given edge masks), detached."""
        with torch.no_grad():
            x, ea = self.x.value().detach(), self._edge_values()
            if self.gates is None:
                return Graph(x=x, edge_index=self.edge_index, edge_attr=ea, graph_attr=self.graph_attr, ptr=self.ptr)
            keep = (self.gates.masks() if masks is None else masks).reshape(-1).to(x.device)
            return Graph(x=x, edge_index=self.edge_index[:, keep], edge_attr=None if ea is None else ea[keep].detach(),
                         graph_attr=self.graph_attr, ptr=self.ptr)

    # -------------------------------------------------------------- parameters
    def params(self) -> list[tuple[Tensor, Tensor]]:
        """Every raw tensor with the metamer that owns each of its rows."""
        out = [(r, self.x.owner) for r in self.x.raw]
        if self.e is not None:
            out += [(r, self.e.owner) for r in self.e.raw]
        if self.gates is not None:
            out.append((self.gates.logits, torch.arange(self.num, device=self.gates.logits.device)))
        return out

    def project_(self) -> None:
        """Bring every raw tensor back into its feasible set."""
        self.x.project_()
        if self.e is not None:
            self.e.project_()
        if self.gates is not None:
            self.gates.project_()

