"""A guided tour: build a reasoner, cache its activations, hook it, print the hook table."""

from __future__ import annotations

import torch

from hookgnn.graph import Graph
from hookgnn.hooks import HookPoint
from hookgnn.models import HookedGNN
from hookgnn.spec import FeatureSpec


def hook_table(model: HookedGNN, cache: dict[str, torch.Tensor], rounds: int = 1) -> str:
    """A text table of hook points (name, axis, cached shape), rounds beyond ``rounds`` folded."""
    lines = [f"{'hook point':<40} {'axis':<8} shape"]
    for info in model.list_hooks():
        t = model.round_of(info.name)
        if t is not None and t >= rounds:
            continue
        shape = tuple(cache[info.name].shape) if info.name in cache else "-"
        lines.append(f"{info.name:<40} {info.axis:<8} {shape}")
    lines.append(f"... and the same for layers.{rounds} .. layers.{model.max_steps - 1}")
    return "\n".join(lines)


def run_tour(seed: int = 0) -> None:
    """Print the tour: a reasoner's hook table, its cache, a forward and a backward hook."""
    torch.manual_seed(seed)
    spec = {"d": FeatureSpec("output", "node", "scalar"), "pi": FeatureSpec("output", "node", "pointer")}
    model = HookedGNN("mpnn", d_hidden=16, node_in=1, edge_in=1, spec=spec, max_steps=4)
    # A 5-node path with self-loops, source at node 0.
    src = torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 4])
    dst = torch.tensor([1, 2, 3, 4, 0, 1, 2, 3, 4])
    graph = Graph(x=torch.eye(5)[:, :1], edge_index=torch.stack([src, dst]), edge_attr=torch.rand(9, 1))
    print(f"model: HookedGNN(mpnn, d_hidden=16, max_steps=4) with {len(model.hook_dict)} hook points")
    print(f"graph: {graph}\n")

    out, cache = model.run_with_cache(graph, grad_metric=lambda o: o["d"].sum())
    print(hook_table(model, cache))
    print(f"\ncache['message', -1]: {tuple(cache['message', -1].shape)}   cache.stack('update'): "
          f"{tuple(cache.stack('update').shape)}")
    print(f"gradient of sum(d) w.r.t. layers.3.hook_update, node 0: {cache.grads['update', 3][0, :4].tolist()}")

    def silence_edge(msg: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        msg = msg.clone()
        msg[0] = 5.0  # the message 0 -> 1, large enough to win the max at node 1
        return msg

    patched = model.run_with_hooks(graph, fwd_hooks=[("layers.0.hook_message", silence_edge)])
    print(f"\nforward hook setting message 0->1 to 5 in round 0 moves d by {(patched['d'] - out['d']).abs().max():.4f}")

    grads: list[torch.Tensor] = []
    out = model.run_with_hooks(graph, bwd_hooks=[("hook_node_embed", lambda g, hook: grads.append(g))])
    out["d"][4].backward()
    print(f"backward hook after the run returned: d(d_4)/d(embedding) has norm {grads[0].norm():.4f}")
    print(f"hooks left attached: {sum(i.num_fwd + i.num_bwd for i in model.list_hooks())}")
