"""How the estimators read PyTorch Geometric layers, registered with :mod:`hookgnn.rounds`.

Exact local recomputation (:mod:`hookgnn.attribution.local`, AtP*) needs to know how a
round module's ``forward`` arguments are indexed and how to patch the source state of
single messages. hookgnn processors declare both; for a PyG ``MessagePassing`` layer this
module says it, and registers itself when :mod:`hookgnn.interop` is imported (which
``import hookgnn`` does), so no code below ``interop/`` knows PyG's classes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from torch import Tensor, nn

from hookgnn.interop.pyg import source_argument
from hookgnn.rounds import Roles, register_round_kind

#: How a PyTorch Geometric ``MessagePassing.forward``'s usual arguments are indexed.
PYG_ROLES = {"x": "node", "edge_index": "edge_index", "edge_attr": "edge", "edge_weight": "edge",
             "edge_type": "edge", "size": "pass", "batch": "node", "pos": "node", "return_attention_weights": "pass"}

#: Layers that normalise by their sources' degree, so read their sources' in-edges too (two hops).
TWO_HOP = ("GCNConv", "ChebConv", "SGConv", "TAGConv", "ARMAConv")


def pyg_roles(layer: nn.Module) -> Roles | None:
    """:data:`PYG_ROLES` with state ``x`` for a PyG ``MessagePassing`` layer (``None`` for others);
    two hops for the layers of :data:`TWO_HOP`, unless the layer says ``receptive_hops``."""
    if any(c.__module__.startswith("torch_geometric.") and c.__name__ == "MessagePassing" for c in type(layer).__mro__):
        hops = 2 if type(layer).__name__ in TWO_HOP else 1
        return dict(PYG_ROLES), "x", int(getattr(layer, "receptive_hops", hops))
    return None


def pyg_source_patch(layer: nn.Module, patch: Callable[[Tensor], Tensor]) -> AbstractContextManager[Any] | None:
    """A context in which PyG's message pre-hook replaces the source argument (``x_j``) of
    ``layer``'s messages by ``patch(x_j)``; ``None`` for a layer without message hooks."""
    register = getattr(layer, "register_message_forward_pre_hook", None)
    if register is None:
        return None
    return _patched_sources(register, source_argument(layer), patch)


@contextmanager
def _patched_sources(register: Callable[..., Any], name: str | None, patch: Callable[[Tensor], Tensor]) -> Iterator[None]:
    handle = register(lambda module, inputs: ({**inputs[0], name: patch(inputs[0][name])},))
    try:
        yield
    finally:
        handle.remove()


register_round_kind(roles=pyg_roles, source_patch=pyg_source_patch)
