"""A tensor passed on unchanged through two hook points: each hook point's gradient is that of what reads it there.

SALSA-CLRS's round reads its state twice, ``h = norm(gru(conv(h, ...), h))``: the conv's input
hook point (``conv.calls.T.hook_input``) holds the same tensor as the hook point before it, and a
patch there reaches the conv alone. Reference: the raw PyG model, with a zero leaf added to the
conv's input in round ``T`` by a forward pre-hook (the gradient of the conv's use alone).
"""

from __future__ import annotations

import pytest
import torch

from hookgnn.attribution import attribute
from model_zoo import case


def _conv_input_grad(c, call: int) -> torch.Tensor:  # noqa: ANN001
    seen: list[torch.Tensor] = []

    def add_leaf(module, args):  # noqa: ANN001, ANN202
        if len(seen) == call:
            leaf = torch.zeros_like(args[0], requires_grad=True)
            seen.append(leaf)
            return (args[0] + leaf, *args[1:])
        seen.append(None)  # type: ignore[arg-type]
        return None

    handle = c.raw.conv.register_forward_pre_hook(add_leaf)
    try:
        out = c.call(c.raw, c.corrupted)  # the base run of the default (denoising) direction
    finally:
        handle.remove()
    c.metric(out, c.corrupted).sum().backward()
    return seen[call].grad


@pytest.mark.parametrize("call", [1, 2])
def test_every_hook_or_one_the_same_gradient_at_a_shared_tensor(call: int) -> None:
    c = case("pyg-salsa")
    name = f"conv.calls.{call}.hook_input"
    want = _conv_input_grad(c, call)
    scale = float(want.abs().max())
    every = attribute(c.model, c.clean, c.corrupted, c.metric, keep="all")  # failed before: both reads summed
    one = attribute(c.model, c.clean, c.corrupted, c.metric, keep="all", names_filter=name)
    for got in (every.grad[name], one.grad[name]):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6 * scale)
    rows = attribute(c.model, c.clean, c.corrupted, c.metric, keep="rows")
    product = every.delta[name] * want
    torch.testing.assert_close(rows.by_row[name], product.sum(1), rtol=1e-4, atol=1e-6 * float(product.abs().max()))
    assert all(i.num_fwd == 0 and i.num_bwd == 0 for i in c.model.list_hooks()), "a hook leaked"
