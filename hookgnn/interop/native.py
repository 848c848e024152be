"""PyG layers as the hookgnn processors that compute the same function, with the same weights.

:func:`to_native` converts

=================================================  ======================================================
``GINEConv(nn, eps, edge_dim)``                    :class:`~hookgnn.nn.GINE` (``use_inputs=False``)
``GINConv(nn, eps)``                               :class:`~hookgnn.nn.GIN`
``GCNConv(d, d')`` (``normalize``, no ``cached``)  :class:`~hookgnn.nn.GCN`
``SAGEConv(d, d', aggr)`` (no ``project``)         :class:`~hookgnn.nn.SAGE`
``GATConv(d, C, heads, add_self_loops=False)``     :class:`~hookgnn.nn.GAT` (``use_inputs=False``,
                                                   ``activation=False``)
=================================================  ======================================================

where ``nn`` is a two-layer MLP: ``Sequential(Linear, activation, Linear)`` or PyG's
``MLP`` with two layers, no normalisation and no dropout. Any other configuration
raises ``ValueError`` naming what cannot be converted; :func:`~hookgnn.interop.from_pyg`
hooks such layers as they are instead. Weights are copied (the native layer is
independent of the original).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hookgnn.nn import GAT, GCN, GIN, GINE, SAGE, HookedMessagePassing
from hookgnn.nn.mlp import HookedMLP

_AGGR = {"add": "sum", "sum": "sum", "mean": "mean", "max": "max", "min": "min"}


def _copy(dst: nn.Module, src: nn.Module) -> None:
    with torch.no_grad():
        dst.weight.copy_(src.weight)  # type: ignore[operator]
        if getattr(src, "bias", None) is not None:
            dst.bias.copy_(src.bias)  # type: ignore[union-attr,operator]
        elif getattr(dst, "bias", None) is not None:
            dst.bias.zero_()  # type: ignore[union-attr,operator]


def _mlp_parts(mlp: nn.Module, where: str) -> tuple[nn.Module, type[nn.Module], nn.Module]:
    """(first Linear, activation class, second Linear) of a two-layer MLP."""
    from torch_geometric.nn import MLP

    if isinstance(mlp, nn.Sequential) and len(mlp) == 3 and isinstance(mlp[1], nn.Module):
        first, act, second = mlp[0], mlp[1], mlp[2]
    elif isinstance(mlp, MLP) and len(mlp.lins) == 2:
        if not mlp.plain_last or any(not isinstance(n, nn.Identity) for n in mlp.norms) or any(p > 0 for p in mlp.dropout):
            raise ValueError(f"{where}: its MLP has normalisation or dropout layers; only Linear-activation-Linear converts")
        first, act, second = mlp.lins[0], mlp.act, mlp.lins[1]
    else:
        raise ValueError(f"{where}: its nn is a {type(mlp).__name__}; only a two-layer MLP "
                         "(Sequential(Linear, activation, Linear) or PyG MLP with two layers) converts")
    if not all(hasattr(m, "weight") and m.weight.dim() == 2 for m in (first, second)):
        raise ValueError(f"{where}: the MLP's first and last layers must be Linear")
    if act is None or any(True for _ in act.parameters()) or getattr(act, "inplace", False):
        raise ValueError(f"{where}: the MLP's activation must be a parameter-free module")
    return first, type(act), second


def _to_hooked_mlp(mlp: nn.Module, where: str) -> HookedMLP:
    first, act, second = _mlp_parts(mlp, where)
    out = HookedMLP(first.weight.shape[1], first.weight.shape[0], second.weight.shape[0], axis="node", activation=act)
    _copy(out.lin_in, first)
    _copy(out.lin_out, second)
    return out


def _eps(dst: nn.Module, src: nn.Module) -> None:
    with torch.no_grad():
        dst.eps.copy_(src.eps)  # type: ignore[operator]


def to_native(conv: nn.Module) -> HookedMessagePassing:
    """The hookgnn processor that computes what ``conv`` computes (see the module doc).

    Call it as ``native(x, edge_index, edge_attr)``.

    >>> from torch_geometric.nn import SAGEConv
    >>> conv = SAGEConv(4, 2)
    >>> x, ei = torch.randn(3, 4), torch.tensor([[0, 1], [1, 2]])
    >>> torch.allclose(to_native(conv)(x, ei), conv(x, ei), atol=1e-6)
    True
    """
    from torch_geometric import nn as pyg

    name = type(conv).__name__
    if getattr(conv, "flow", "source_to_target") != "source_to_target":
        raise ValueError(f"{name} uses flow='target_to_source'; native processors pass messages source -> target")
    if isinstance(conv, pyg.GINEConv):
        return _gine(conv)
    if isinstance(conv, pyg.GINConv):
        gin_mlp = _to_hooked_mlp(conv.nn, name)
        gin = GIN(gin_mlp.lin_in.in_features, gin_mlp.lin_in.out_features, gin_mlp.lin_out.out_features,
                  train_eps=isinstance(conv.eps, nn.Parameter), activation=type(gin_mlp.act))
        gin.mlp = gin_mlp
        _eps(gin, conv)
        return gin
    if isinstance(conv, pyg.GCNConv):
        return _gcn(conv)
    if isinstance(conv, pyg.SAGEConv):
        if conv.project:
            raise ValueError("SAGEConv(project=True) applies a Linear and relu before aggregating; not converted")
        aggr = _AGGR.get(conv.aggr) if isinstance(conv.aggr, str) else None
        if aggr is None:
            raise ValueError(f"SAGEConv with aggr={conv.aggr!r}: native aggregations are {sorted(set(_AGGR.values()))}")
        sage = SAGE(conv.lin_l.weight.shape[1], conv.out_channels, aggr=aggr, root_weight=conv.root_weight,  # type: ignore[arg-type]
                    normalize=conv.normalize, bias=conv.lin_l.bias is not None)
        _copy(sage.lin_l, conv.lin_l)
        if conv.root_weight:
            _copy(sage.lin_r, conv.lin_r)  # type: ignore[arg-type]
        return sage
    if isinstance(conv, pyg.GATConv):
        return _gat(conv)
    raise ValueError(f"no native processor for {name}; convertible: GINEConv, GINConv, GCNConv, SAGEConv, GATConv "
                     "(hook any PyG layer as it is with hookgnn.from_pyg)")


def _gine(conv: Any) -> GINE:
    first, _, second = _mlp_parts(conv.nn, "GINEConv")
    d = first.weight.shape[1]
    if second.weight.shape[0] != d:
        raise ValueError(f"GINEConv maps width {d} to {second.weight.shape[0]}; the native GINE keeps the width")
    d_edge = conv.lin.weight.shape[1] if conv.lin is not None else d
    gine = GINE(d, d_mlp=first.weight.shape[0], d_edge=d_edge, train_eps=isinstance(conv.eps, nn.Parameter),
                use_inputs=False)
    gine.mlp = _to_hooked_mlp(conv.nn, "GINEConv")
    _eps(gine, conv)
    with torch.no_grad():
        if conv.lin is not None:
            _copy(gine.lin_edge, conv.lin)
        else:
            gine.lin_edge.weight.copy_(torch.eye(d))
            gine.lin_edge.bias.zero_()
    return gine


def _gcn(conv: Any) -> GCN:
    if conv.improved or conv.cached:
        raise ValueError("GCNConv(improved=True) or cached=True is not converted (improved changes nothing in PyG "
                         "without edge weights; a cached normalisation belongs to one graph)")
    if conv.normalize != conv.add_self_loops:
        raise ValueError("GCNConv(normalize=True, add_self_loops=False) is not converted")
    gcn = GCN(conv.in_channels, conv.out_channels, normalize=conv.normalize, bias=conv.bias is not None)
    with torch.no_grad():
        gcn.lin.weight.copy_(conv.lin.weight)
        if conv.bias is not None:
            gcn.bias.copy_(conv.bias)  # type: ignore[union-attr]
    return gcn


def _gat(conv: Any) -> GAT:
    if conv.add_self_loops:
        raise ValueError("GATConv(add_self_loops=True) attends over self-loops that it adds itself; build it with "
                         "add_self_loops=False (and add self-loops to the graph if you want them) to convert it")
    if not isinstance(conv.in_channels, int):
        raise ValueError("GATConv with separate source and target widths is not converted")
    if getattr(conv, "dropout", 0.0) and conv.training:
        raise ValueError("GATConv drops attention weights in training mode; call .eval() first")
    heads, out = conv.heads, conv.out_channels
    d_hidden = heads * out if conv.concat else out
    gat = GAT(d_hidden, heads=heads, concat=conv.concat, d_edge=conv.lin_edge.weight.shape[1] if conv.lin_edge is not None
              else d_hidden, negative_slope=conv.negative_slope, use_inputs=False, residual=conv.res is not None,
              activation=False, d_in=conv.in_channels)
    with torch.no_grad():
        gat.lin.weight.copy_(conv.lin.weight)
        gat.att_src.copy_(conv.att_src.reshape(heads, out))
        gat.att_dst.copy_(conv.att_dst.reshape(heads, out))
        if conv.lin_edge is not None:
            gat.lin_edge.weight.copy_(conv.lin_edge.weight)
            gat.att_edge.copy_(conv.att_edge.reshape(heads, out))
        else:
            gat.lin_edge.weight.zero_()
            gat.att_edge.zero_()
        bias = conv.bias if conv.bias is not None else torch.zeros(d_hidden)
        if conv.res is not None:
            gat.skip.weight.copy_(conv.res.weight)  # type: ignore[union-attr]
            gat.skip.bias.copy_(bias)  # type: ignore[union-attr]
        else:
            gat.bias.copy_(bias)  # type: ignore[union-attr]
    return gat
