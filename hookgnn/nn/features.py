"""What processors read: node inputs next to states, and edge features (or zeros)."""

from __future__ import annotations

import torch
from torch import Tensor

from hookgnn.nn.projection import Block, SourceRows, source_block


def with_inputs(x: Tensor | None, h: Tensor) -> Tensor:
    """:math:`z = [x, h]`, with zeros for ``x`` when there are no encoded inputs.

    >>> with_inputs(None, torch.ones(2, 3)).tolist()
    [[0.0, 0.0, 0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]]
    """
    return torch.cat([torch.zeros_like(h) if x is None else x, h], dim=-1)


def edge_features(edge_attr: Tensor | None, like: Tensor, width: int) -> Tensor:
    """``edge_attr``, or zeros ``[E, width]`` (dtype and device of ``like``) when absent.

    >>> edge_features(None, torch.ones(2, 3), 4).shape
    torch.Size([2, 4])
    """
    return like.new_zeros(like.shape[0], width) if edge_attr is None else edge_attr


def endpoint_blocks(h: Tensor, h_src: SourceRows | None, x: Tensor | None, edge_index: Tensor,
                    edge_attr: Tensor | None, d_edge: int) -> list[Block]:
    """The blocks of :math:`[x_u, h_u, x_v, h_v, e_{uv}]` for every edge ``u -> v``, for
    :func:`~hookgnn.nn.projection.concat_linear`: ``h_u`` read through ``hook_src`` when
    ``h_src`` is given (:func:`~hookgnn.nn.projection.source_block`); absent ``x`` or
    ``edge_attr`` are zero blocks.

    >>> [b.width for b in endpoint_blocks(torch.ones(2, 3), None, None, torch.tensor([[0], [1]]), None, 4)]
    [3, 3, 3, 3, 4]
    """
    src, dst = edge_index
    d = h.shape[-1]
    return [Block(x, src, d), source_block(h, h_src, src), Block(x, dst, d), Block(h, dst, d),
            Block(edge_attr, None, d_edge)]
