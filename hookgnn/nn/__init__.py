"""Hooked message passing and the processors built on it (one per file)."""

from collections.abc import Callable

from hookgnn.nn.chunking import edge_chunk_size
from hookgnn.nn.gat import GAT
from hookgnn.nn.gcn import GCN
from hookgnn.nn.gin import GIN
from hookgnn.nn.gine import GINE
from hookgnn.nn.message_passing import HookedMessagePassing
from hookgnn.nn.minagg import MinAgg
from hookgnn.nn.mlp import HookedMLP
from hookgnn.nn.mlp_conv import MLPConv
from hookgnn.nn.mpnn import MPNN
from hookgnn.nn.pgn import PGN
from hookgnn.nn.sage import SAGE
from hookgnn.nn.triplet import TripletGMPNN, TripletIndex, triplet_index

#: Built-in processors by name; each is constructed as ``cls(d_hidden)``.
PROCESSORS: dict[str, Callable[[int], HookedMessagePassing]] = {
    "mpnn": MPNN,
    "minagg": MinAgg,
    "pgn": PGN,
    "gat": GAT,
    "gine": GINE,
    "triplet_gmpnn": TripletGMPNN,
    # PyG's classic layers (GCNConv, SAGEConv, GINConv) as processors, with their PyG defaults
    "gcn": GCN,
    "sage": SAGE,
    "gin": GIN,
}

__all__ = [
    "GAT",
    "GCN",
    "GIN",
    "GINE",
    "MPNN",
    "PGN",
    "PROCESSORS",
    "SAGE",
    "HookedMLP",
    "HookedMessagePassing",
    "MLPConv",
    "MinAgg",
    "TripletGMPNN",
    "TripletIndex",
    "edge_chunk_size",
    "triplet_index",
]
