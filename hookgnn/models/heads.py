"""Encoders and decoders of encode-process-decode models, one per feature location/type.

Decoders return *raw* predictions, by feature type (:mod:`hookgnn.spec`):

==============  ===================================================================
scalar          value ``[n]``
mask            logit ``[n]`` (probability ``sigmoid``)
mask_one        logit ``[n]`` (probability: softmax over the graph's items)
categorical     logits ``[n, dim]``
pointer         logit ``[E]`` per edge ``u -> v`` (softmax over the incoming edges of v)
edge pointer    logits ``[E, K]``: edge ``i -> j`` against slot ``k``, node ``k`` of its
                graph (softmax over the row; :func:`~hookgnn.spec.edge_pointer_slots`)
pointer to any  logits ``[N, K]``: node ``v`` against slot ``k``, node ``k`` of its graph
node            (``any_node``; softmax over the row; :func:`~hookgnn.spec.pointer_slots`)
==============  ===================================================================

A pointer decoder scores edge ``u -> v`` as
:math:`s_{uv} = w^\\top \\mathrm{relu}(W_s h_u + W_d h_v + W_e e_{uv})`; an edge pointer
decoder scores edge ``i -> j`` pointing to node ``k`` as
:math:`s_{ijk} = w^\\top \\mathrm{relu}(W_s h_i + W_d h_j + W_e e_{ij} + W_k h_k)`
(``O(E K d)`` memory; slots past a graph's last node get
:data:`~hookgnn.spec.EDGE_POINTER_PAD`); a pointer to any node scores node ``v`` pointing
to node ``k`` as :math:`s_{vk} = w^\\top \\mathrm{relu}(W_d h_v + W_k h_k)` (``O(N K d)``
memory, transient: the candidate pairs are built per graph at decode time, never stored).
"""

from __future__ import annotations

import torch
from jaxtyping import Float
from torch import Tensor, nn

from hookgnn.graph import Graph
from hookgnn.nn.projection import Block, concat_linear, gather_rows
from hookgnn.ops import scatter, scatter_softmax
from hookgnn.spec import EDGE_POINTER_PAD, FeatureSpec, is_numbered_pointer, pointer_slots


class Encoder(nn.Module):
    """A linear encoder; with 0 input features it is a learned constant.

    >>> Encoder(0, 4)(torch.zeros(3, 0)).shape
    torch.Size([3, 4])
    """

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.d_in = d_in
        self.lin = nn.Linear(d_in, d_out) if d_in > 0 else None
        self.bias = nn.Parameter(torch.zeros(d_out)) if d_in == 0 else None

    def forward(self, x: Float[Tensor, "row d_in"]) -> Float[Tensor, "row d_out"]:
        if self.lin is not None:
            return self.lin(x)
        assert self.bias is not None
        return self.bias.expand(x.shape[0], -1)


class Decoder(nn.Module):
    """Decode one feature from node states ``h``, encoded inputs and edge/graph encodings."""

    def __init__(self, spec: FeatureSpec, d: int) -> None:
        super().__init__()
        self.spec = spec
        width = spec.dim
        if spec.type == "pointer" and spec.any_node:
            self.dst, self.target, self.out = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, 1)
        elif spec.type == "pointer":
            self.src, self.dst, self.edge = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
            self.out = nn.Linear(d, 1)
            self.target = nn.Linear(d, d) if is_numbered_pointer(spec) else None
        elif spec.location == "node":
            self.out = nn.Linear(2 * d, width)
        elif spec.location == "edge":
            self.hidden = nn.Linear(3 * d, d)
            self.out = nn.Linear(d, width)
        else:
            self.out = nn.Linear(2 * d, width)

    def forward(
        self,
        h: Float[Tensor, "node d"],
        x: Float[Tensor, "node d"],
        e: Float[Tensor, "edge d"],
        g: Float[Tensor, "graph d"],
        graph: Graph,
    ) -> Tensor:
        src, dst = graph.edge_index
        spec = self.spec
        if spec.type == "pointer" and spec.any_node:  # node v against every node k of its graph
            nodes, valid = pointer_slots(graph, "node")
            assert self.target is not None
            score = self.dst(h).unsqueeze(1) + self.target(h)[nodes]  # [N, K, d]
            return self.out(torch.relu(score)).squeeze(-1).masked_fill(~valid, EDGE_POINTER_PAD)
        if spec.type == "pointer":
            # W_s h_u + W_d h_v on nodes, then gathered to the edges (the same values).
            score = self.edge(e).add_(gather_rows(self.src(h), src)).add_(gather_rows(self.dst(h), dst))
            if self.target is not None:  # edge pointer: every node k of the edge's graph
                nodes, valid = pointer_slots(graph, "edge")
                score = score.unsqueeze(1) + self.target(h)[nodes]  # [E, K, d]
                return self.out(torch.relu(score)).squeeze(-1).masked_fill(~valid, EDGE_POINTER_PAD)
            return self.out(torch.relu(score)).squeeze(-1)
        if spec.location == "node":
            raw = self.out(torch.cat([h, x], dim=-1))
        elif spec.location == "edge":
            d = h.shape[-1]
            blocks = [Block(h, src, d), Block(h, dst, d), Block(e, None, e.shape[-1])]
            raw = self.out(torch.relu(concat_linear(self.hidden, blocks, src.shape[0])))
        else:
            pooled = scatter(h, graph.batch, graph.num_graphs, "max")
            raw = self.out(torch.cat([pooled, g], dim=-1))
        return raw if spec.type == "categorical" else raw.squeeze(-1)


def prediction_to_input(spec: FeatureSpec, raw: Tensor, graph: Graph) -> Tensor:
    """Turn a raw prediction into the soft value of the feature (as a hint input).

    Scalars stay, masks become probabilities, categoricals and pointers softmaxes
    (pointers over each node's incoming edges, ``mask_one`` over each graph's items).
    """
    if spec.type == "scalar":
        return raw
    if spec.type == "mask":
        return torch.sigmoid(raw)
    if spec.type == "categorical":
        return torch.softmax(raw, dim=-1)
    if is_numbered_pointer(spec):
        raise ValueError(f"a numbered pointer prediction [{spec.location}, K] has no fixed input width: "
                         f"encode_hints does not support edge pointer hints or node pointers with any_node")
    if spec.type == "pointer":
        return scatter_softmax(raw, graph.edge_index[1], graph.num_nodes)
    owner = graph.owner(spec.location)
    return scatter_softmax(raw, owner, graph.num_graphs)


def as_columns(spec: FeatureSpec, value: Tensor) -> Tensor:
    """A feature value as input columns ``[n, width]``."""
    return value if spec.type == "categorical" else value.unsqueeze(-1)
