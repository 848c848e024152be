"""Jacobians of a hook activation with respect to input feature rows, through hooks only.

For a graph with node features :math:`x \\in \\mathbb{R}^{N \\times F}` (or edge features
:math:`e \\in \\mathbb{R}^{E \\times F_e}`) and a hook activation :math:`h \\in \\mathbb{R}^M`
(flattened), :func:`input_jacobian` returns

.. math::

    J = \\frac{\\partial\\, \\mathrm{vec}(h)}{\\partial\\, \\mathrm{vec}(x_S)}
    \\in \\mathbb{R}^{M \\times |S| F}

for a set of rows :math:`S`, column ``i * F + f`` being feature ``f`` of row ``S[i]``.
It is computed exactly by automatic differentiation (no finite differences), in the
model's dtype: with ``M`` reverse passes when :math:`M \\le |S|F`, else with
:math:`|S|F` forward-mode products obtained as the derivative of a vector-Jacobian
product (double backward).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.metamers.activations import Forward, capture, hook_names


def input_jacobian(
    model: HookedRootModule,
    graph: Graph,
    hook: str,
    rows: Sequence[int] | None = None,
    *,
    inputs: Literal["x", "edge_attr"] = "x",
    forward: Forward | None = None,
) -> Float[Tensor, "act input"]:
    """:math:`\\partial\\, \\mathrm{vec}(h_{hook}) / \\partial\\, \\mathrm{vec}(\\mathrm{inputs}[rows])`.

    ``rows`` are node ids (``inputs="x"``) or edge ids (``"edge_attr"``); ``None`` means
    all rows. The model's parameters are not touched.

    >>> from hookgnn import HookedGNN
    >>> model = HookedGNN("mpnn", 4, node_in=2, max_steps=1)
    >>> g = Graph(x=torch.randn(3, 2), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> input_jacobian(model, g, "layers.0.hook_update", rows=[1]).shape
    torch.Size([12, 2])
    """
    forward = model if forward is None else forward
    hook_names(model, hook)
    if inputs not in ("x", "edge_attr"):
        raise ValueError(f"inputs must be 'x' or 'edge_attr', got {inputs!r}")
    base = getattr(graph, inputs)
    if base is None:
        raise ValueError(f"the graph has no {inputs}")
    count = base.shape[0]
    idx = torch.arange(count) if rows is None else torch.as_tensor(list(rows), dtype=torch.long)
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= count):
        raise ValueError(f"rows {idx.tolist()} out of range for {count} rows of {inputs}")
    leaf = base.detach().clone().requires_grad_()
    with torch.enable_grad():
        h = capture(model, forward, graph.replace(**{inputs: leaf}), [hook])[hook].reshape(-1)
        num_in = idx.numel() * base.shape[1]
        jac = base.new_zeros(h.numel(), num_in)
        if not h.requires_grad or h.numel() == 0 or num_in == 0:
            return jac
        if h.numel() <= num_in:
            for i in range(h.numel()):
                (g,) = torch.autograd.grad(h[i], leaf, retain_graph=True, allow_unused=True)
                if g is not None:
                    jac[i] = g[idx].reshape(-1)
            return jac
        probe = torch.zeros_like(h, requires_grad=True)
        (vjp,) = torch.autograd.grad(h, leaf, grad_outputs=probe, create_graph=True, allow_unused=True)
        if vjp is None or not vjp.requires_grad:
            return jac
        vjp = vjp[idx].reshape(-1)  # = J^T probe, linear in probe
        for p in range(num_in):
            (col,) = torch.autograd.grad(vjp[p], probe, retain_graph=True, allow_unused=True)
            if col is not None:
                jac[:, p] = col
        return jac.detach()
