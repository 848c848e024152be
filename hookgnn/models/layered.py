"""LayeredGNN: rounds with their own widths, an activation between them (``HookedGNN.from_layers``).

.. math::

    h^{(0)} = E_x(x), \\quad e = E_e(e^{in}), \\qquad
    h^{(t+1)} = P_t(h^{(t)}, e), \\quad t = 0, \\dots, T-1, \\qquad
    \\text{then } h^{(t+1)} \\leftarrow \\sigma(h^{(t+1)}) \\text{ for } t < T - 1,

    \\hat y_k = D_k(h^{(T)})

Each round ``P_t`` is its own :class:`~hookgnn.nn.HookedMessagePassing` (``layers.t``)
with its own input and output width, so architectures such as the published
1 -> 8 -> 1 min-aggregation Bellman-Ford network (two :class:`~hookgnn.nn.MLPConv`
rounds with a relu between them, no encoders or decoders) are written natively.
Encoders default to the identity (the state entering round 0 is ``x`` itself) and the
decoder to the final state (output ``"out"``). Hook points: ``hook_node_embed`` /
``hook_edge_embed`` (after the encoders), ``layers.{t}.*`` (the round's own),
``hook_state.{t}`` (the state entering round ``t``, after the activation, ``1 <= t < T``)
and ``hook_out.{name}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from hookgnn.graph import Graph
from hookgnn.hooks import HookPoint
from hookgnn.models.base import LayerStack, ModelOutput
from hookgnn.nn.message_passing import HookedMessagePassing
from hookgnn.nn.wiring import ResolvedLink, processor_links

Activation = str | Callable[[Tensor], Tensor] | None


def _identity(t: Tensor) -> Tensor:
    return t


def _activation(act: Activation) -> Callable[[Tensor], Tensor]:
    if act is None or act == "identity":
        return _identity
    if act == "relu":
        return torch.relu
    if callable(act):
        return act
    raise ValueError(f"activation must be 'relu', None or an elementwise callable, got {act!r}")


class LayeredGNN(LayerStack):
    """Hooked rounds of their own widths (see the module doc); build with ``HookedGNN.from_layers``.

    >>> from hookgnn.nn import MLPConv
    >>> model = LayeredGNN([MLPConv(1, 8, d_edge=1), MLPConv(8, 1, d_edge=1)])
    >>> g = Graph(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]), edge_attr=torch.ones(2, 1))
    >>> model(g)["out"].shape, model.state_hook(1), model.state_hook(2)
    (torch.Size([3, 1]), 'hook_state.1', 'layers.1.hook_update')
    """

    def __init__(
        self,
        layers: Sequence[HookedMessagePassing],
        node_encoder: nn.Module | None = None,
        edge_encoder: nn.Module | None = None,
        decoders: Mapping[str, nn.Module] | None = None,
        activation: Activation = "relu",
    ) -> None:
        super().__init__()
        if not layers:
            raise ValueError("from_layers needs at least one layer")
        for t, layer in enumerate(layers):
            if not isinstance(layer, HookedMessagePassing):
                raise TypeError(f"layer {t} is a {type(layer).__name__}, not a HookedMessagePassing (wrap PyG layers "
                                "with hookgnn.from_pyg, or convert them with hookgnn.interop.to_native)")
        self.node_encoder = node_encoder if node_encoder is not None else nn.Identity()
        self.edge_encoder = edge_encoder if edge_encoder is not None else nn.Identity()
        self.hook_node_embed = HookPoint("node")
        self.hook_edge_embed = HookPoint("edge")
        self.layers = nn.ModuleList(layers)
        self.hook_state = nn.ModuleDict({str(t): HookPoint("node") for t in range(1, len(layers))})
        self.activation = activation
        self._act = _activation(activation)
        self.decoders = nn.ModuleDict(dict(decoders) if decoders is not None else {"out": nn.Identity()})
        self.hook_out = nn.ModuleDict({k: HookPoint("node") for k in self.decoders})
        self.setup()

    def state_hook(self, t: int) -> str:
        """``hook_node_embed`` (t = 0), ``hook_state.{t}`` (after the activation) or, for
        ``t = T``, ``layers.{T-1}.hook_update``."""
        if not 0 <= t <= len(self.layers):
            raise IndexError(f"no state enters round {t}; rounds are 0 .. {len(self.layers) - 1}")
        if t == 0:
            return "hook_node_embed"
        return f"hook_state.{t}" if t < len(self.layers) else f"layers.{t - 1}.hook_update"

    def between_rounds(self, t: int) -> Callable[[Tensor], Tensor] | None:
        """The activation between rounds (node-wise), ``hook_update`` of ``t`` to ``hook_state.{t+1}``."""
        return self._act if t + 1 < len(self.layers) else _identity

    def round_links(self, t: int) -> list[ResolvedLink]:
        """Round ``t``'s processor links, plus (``t >= 1``) the activation from the previous
        round's ``hook_update`` to ``hook_state.{t}``."""
        links = processor_links(self, t)
        if t >= 1:
            act = "identity" if self.activation is None else self.activation
            links.append(ResolvedLink(t, "between", f"layers.{t - 1}.hook_update", f"hook_state.{t}", "same", None, act))
        return links

    def forward(self, graph: Graph) -> ModelOutput:
        """Run every round; outputs by decoder name, and the final state as ``hidden``."""
        if not isinstance(graph, Graph):
            raise TypeError(f"LayeredGNN takes a hookgnn Graph, got {type(graph).__name__}")
        h = self.hook_node_embed(self.node_encoder(graph.x))  # [node, d_0]
        e = None if graph.edge_attr is None else self.hook_edge_embed(self.edge_encoder(graph.edge_attr))  # [edge, d_e]
        last = len(self.layers) - 1
        for t, layer in enumerate(self.layers):
            h = layer(h, graph.edge_index, e, batch=graph.batch)
            if t < last:
                h = self.hook_state[str(t + 1)](self._act(h))  # [node, d_{t+1}]
        outputs = {k: self.hook_out[k](dec(h)) for k, dec in self.decoders.items()}
        return ModelOutput(outputs, {}, h)
