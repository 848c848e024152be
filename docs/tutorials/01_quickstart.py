# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 1. Quickstart: hook points, the cache, per-graph selection
#
# hookgnn gives every message, aggregation and update of every round of message passing a
# named hook point. This tutorial writes a processor, runs it, caches it, edits it with
# forward hooks, reads gradients with backward hooks, and picks one graph out of a batch.
# It trains nothing and runs in seconds (`--quick` changes nothing here).

# %%
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch
from torch import nn

from hookgnn import Graph, HookedGNN, HookedMessagePassing
from tutorial_settings import settings

S = settings("01_quickstart")
torch.manual_seed(0)

# %% [markdown]
# ## A processor is a subclass
#
# Write `message` and `update` and pick an aggregation; the hook points come for free.
# Arguments are found by name: `h_src` / `h_dst` are the sender's and receiver's states
# per edge, `edge_attr` the encoded edge features, `aggr` the aggregated messages, `h`
# the node's own state.

# %%
class MaxMLP(HookedMessagePassing):
    """m_uv = relu(W [h_u, e_uv]);  a_v = max_u m_uv;  h'_v = relu(U [a_v, h_v])"""

    def __init__(self, d: int) -> None:
        super().__init__(aggr="max")
        self.msg, self.upd = nn.Linear(2 * d, d), nn.Linear(2 * d, d)

    def message(self, h_src, h_dst, edge_attr):
        return torch.relu(self.msg(torch.cat([h_src, edge_attr], -1)))  # [E, d]

    def update(self, aggr, h):
        return torch.relu(self.upd(torch.cat([aggr, h], -1)))  # [N, d]


model = HookedGNN(MaxMLP, d_hidden=16, node_in=1, edge_in=1, max_steps=4)  # 4 weight-tied rounds
path = Graph(x=torch.rand(5, 1), edge_index=torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]), edge_attr=torch.rand(4, 1))
for point in model.list_hooks()[:7]:
    print(f"{point.name:28s} axis={point.axis}")

# %% [markdown]
# Every hook point knows its **axis** (`node`, `edge`, `graph`): that is how a batched
# cache is split back into graphs, and how patching knows what a row is.
#
# ## The cache

# %%
out, cache = model.run_with_cache(path)
print(cache["layers.3.hook_message"].shape)  # [E, d]: round 3's messages
print(torch.equal(cache["message", -1], cache["layers.3.hook_message"]))  # shorthand: (kind, round)
updates = cache.stack("update")  # [rounds, N, d]
print(updates.shape)

fig, ax = plt.subplots(figsize=(4, 2.5))
im = ax.imshow(updates.norm(dim=-1).detach(), cmap="viridis")
ax.set(xlabel="node", ylabel="round", title="|h_v| after each round")
fig.colorbar(im)
S.figure(fig, "state_norms.png")

# %% [markdown]
# ## Forward hooks edit, backward hooks read gradients
#
# A hook is `fn(tensor, hook) -> replacement or None`. Hooks added for a run are removed
# when it ends, also when it raises; `add_hook` returns a handle to remove yourself.

# %%
def silence_first_edge(msg, hook):
    msg = msg.clone()
    msg[0] = 0.0  # the message 0 -> 1
    return msg


patched = model.run_with_hooks(path, fwd_hooks=[("layers.0.hook_message", silence_first_edge)])
print("changed nodes:", (patched.hidden - out.hidden).abs().sum(-1).gt(1e-6).nonzero().flatten().tolist())

grads = []
result = model.run_with_hooks(path, bwd_hooks=[("layers.1.hook_update", lambda g, hook: grads.append(g))])
result.hidden[4].sum().backward()  # fires now, after run_with_hooks returned
print("d h_4 / d (round-1 state) is non-zero at nodes:", grads[0].abs().sum(-1).gt(0).nonzero().flatten().tolist())

handle = model.add_hook(lambda name: name.endswith("hook_aggregation"), lambda t, hook: print(hook.name, tuple(t.shape)))
model(path)
handle.remove()

_, cache = model.run_with_cache(path, names_filter=lambda n: "update" in n, grad_metric=lambda o: o.hidden[4].sum())
print(sorted(cache.grads)[:2], "...")  # d metric / d activation, parameters untouched

# %% [markdown]
# Only nodes downstream of edge 0 -> 1 change, and node 4's final state depends on the
# states after round 1 of nodes 2, 3 and 4 only: two rounds are left, and messages flow
# source -> target, one hop per round.
#
# ## Batches, and one graph out of a batch
#
# `Graph.collate` makes one disjoint union; `cache.graph(i)` takes graph `i`'s rows of
# every node, edge and graph activation, and equals running graph `i` alone.

# %%
graphs = [Graph(x=torch.rand(n, 1), edge_index=torch.randint(0, n, (2, 2 * n)), edge_attr=torch.rand(2 * n, 1))
          for n in (3, 6, 4)]
batch = Graph.collate(graphs)
_, batched = model.run_with_cache(batch)
_, alone = model.run_with_cache(graphs[1])
one = batched.graph(1)
same = all(torch.allclose(one[k], alone[k], atol=1e-6) for k in alone)
print(f"batch: {batch.num_graphs} graphs, {batch.num_nodes} nodes; graph 1 from the batch == graph 1 alone: {same}")
S.record(hook_points=len(model.list_hooks()), per_graph_selection_matches=same)
print("results:", S.save())

# %% [markdown]
# Next: tutorial 2 trains a Bellman-Ford reasoner and reads its messages round by round.
