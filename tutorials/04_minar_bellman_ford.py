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
# # 4. Reproducing the published Bellman-Ford circuit (MINAR)
#
# MINAR (He et al., "Mechanistic Interpretability for Neural Algorithmic Reasoning",
# arXiv 2602.21442) trains a small PyTorch Geometric network to run two rounds of
# Bellman-Ford, scores every weight of it with neuron-level EAP-IG, and finds that a
# circuit of **17 weight entries** (out of 18,240) does the work: with only the circuit
# kept the test loss stays at **0.06**, and with the circuit removed it rises to about
# **25,000**.
#
# This tutorial reproduces that finding with hookgnn, starting from the network a PyG user
# would write:
#
# 1. train the published architecture on the published path graphs, with L1 (plain PyG);
# 2. bring it into hookgnn with `hookgnn.from_pyg`, score every weight entry with EAP-IG,
#    keep the top ones, and evaluate the circuit (kept alone, and removed);
# 3. follow the circuit over training, from checkpoints: how it forms and how L1 prunes
#    everything else;
# 4. compare the textbook EAP-IG formula with the one the published code computes.
#
# **Targets** (from the issue): at most 20 weight entries; circuit-only loss within 2x of
# the full model's; removing the circuit raises the loss at least 100x.
#
# Run it as a script (`python tutorials/04_minar_bellman_ford.py [--quick] [--out DIR]`) or
# open it as a notebook (jupytext). The *full* setting is the published schedule (20,000
# epochs, about 4 minutes of training on one CPU core); `--quick` trains 1,500 epochs.

# %%
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

import hookgnn
from hookgnn.attribution import attribute, eap
from hookgnn.circuits import Circuit, evaluate, jaccard

from bf_published import corrupt, distance_se, published_network, relative_error, test_set, train, training_set
from neuron_circuits import (label, linear_edges, plot_circuit, published_formula, ranked,
                             sweep_sizes, weight_of)
from tutorial_settings import settings

S = settings("04_minar_bellman_ford")
torch.set_num_threads(1)  # tiny matrices: one thread is the fastest on a CPU

# %% [markdown]
# ## 1. The published network, trained in plain PyG
#
# `bf_published.py` (beside this file) holds the setup as the paper describes it: two
# min-aggregation `MessagePassing` layers in a PyG `BasicGNN`, widths 1 -> 8 -> 1, message
# and update MLPs 64 wide; 40 small training paths whose label is the 2-hop Bellman-Ford
# distance (the source has input 0, every other node 100); loss = MSE on reached nodes
# plus 0.001 times the L1 norm of every parameter, AdamW, full batch.

# %%
EPOCHS = S.pick(1_500, 20_000)
data = training_set(seed=0)
test = test_set(per_family=S.pick(3, 10), max_nodes=S.pick(16, 40), seed=1)
net = published_network(d_in=1, d_out=1, seed=0)
print(net)
print(f"training: {data.num_graphs} graphs, {data.num_nodes} nodes; test: {test.num_graphs} graphs, "
      f"{test.num_nodes} nodes, {test.num_edges} arcs")

start = time.perf_counter()
history, checkpoints = train(net, data, EPOCHS, checkpoint_every=EPOCHS // S.pick(3, 20))
net.eval()
train_seconds = time.perf_counter() - start
with torch.no_grad():
    full_loss = float(relative_error(net(test.x, test.edge_index, edge_attr=test.edge_attr), test).mean())
n_params = sum(p.numel() for p in net.parameters())
print(f"{EPOCHS} epochs in {train_seconds:.0f} s; train MSE {history[-1]['mse']:.5f}; L1 {history[-1]['l1']:.2f}; "
      f"parameters above 1e-3: {history[-1]['l0']} of {n_params}")
print(f"test loss (multiplicative error on reached nodes): {full_loss:.5f}")

fig, ax = plt.subplots(figsize=(6, 3.2))
epochs = [h["epoch"] for h in history]
ax.semilogy(epochs, [h["mse"] for h in history], label="train MSE")
ax.semilogy(epochs, [1e-3 * h["l1"] for h in history], label="0.001 x L1")
ax2 = ax.twinx()
ax2.semilogy(epochs, [h["l0"] for h in history], color="C2", ls=":", label="parameters > 1e-3")
ax.set_xlabel("epoch")
fig.legend(loc="upper right", fontsize=7)
S.figure(fig, "training.png")
S.record(epochs=EPOCHS, train_seconds=train_seconds, full_loss=full_loss, parameters=n_params,
         parameters_above_1e_3=history[-1]["l0"], l1=history[-1]["l1"])

# %% [markdown]
# The paper's run ended with an L1 norm of 11.49 and 10 parameters above 1e-3: L1 has
# pruned almost the whole network.
#
# ## 2. Into hookgnn, and the circuit
#
# `hookgnn.from_pyg` wraps the model object as it is: every `MessagePassing` call is a
# round with `hook_src`, `hook_message`, `hook_aggregation`, `hook_update`; every `Linear`
# and activation module has `hook_out`; neuron-to-neuron links are traced on the first
# call. Nothing of the model is copied or rewritten, and the wrapped model computes exactly
# what the original does.

# %%
hooked = hookgnn.from_pyg(net, example=test)
with torch.no_grad():
    same = torch.equal(hooked(test), net(test.x, test.edge_index, edge_attr=test.edge_attr))
print("wrapped output equals the original:", same)
print([h.name for h in hooked.list_hooks()][:8], "...")

# %% [markdown]
# **EAP-IG at neuron level.** The corrupted twin of every test graph has all edge weights
# 0 and a huge input at the source; the metric is the squared distance error on reached
# nodes. `eap(..., level="weight")` scores every weight entry
# $W_{ji}$ of every Linear by $W_{ji} \sum_r \Delta u_{r,i}\, \bar g_{r,j}$ (input
# difference times weight times the gradient at the output, averaged along the straight
# path from corrupted to clean inputs). The universe is the 18,240 weight entries: MINAR's
# computation graph, one edge per entry.

# %%
corrupted = corrupt(test)
start = time.perf_counter()
scores = eap(hooked, test, corrupted, distance_se, ig_steps=20, level="weight")
textbook = linear_edges(hooked, scores)
order = ranked(textbook)
print(f"{len(textbook)} weight entries scored in {time.perf_counter() - start:.1f} s")
for e in order[:12]:
    print(f"  {textbook[e]:+10.3g}  W = {weight_of(hooked, e):+.4f}  {label(e)}")

# %% [markdown]
# **Circuit-only and circuit-ablated loss** of the top `n` entries, for each `n`:
# `hookgnn.circuits.evaluate(..., ablation="zero")` zeroes every entry of the universe
# outside the circuit through hooks (the weights themselves are never touched; the test
# suite checks this equals zeroing them in a copy), and the ablated run keeps everything
# but the circuit.

# %%
sizes = list(range(1, S.pick(21, 31)))
rows = sweep_sizes(hooked, test, relative_error, order, sizes)
chosen = next((r for r in rows if r["circuit"] <= 2 * full_loss), rows[-1])
n_edges = chosen["edges"]
circuit = order[:n_edges]
print(f"full model {full_loss:.5f}")
for r in rows[:20]:
    mark = "  <- chosen" if r is chosen else ""
    print(f"  top {r['edges']:2d}: circuit only {r['circuit']:.5g}, circuit ablated {r['ablated']:.5g}{mark}")
ratio_kept, ratio_ablated = chosen["circuit"] / full_loss, chosen["ablated"] / full_loss
print(f"chosen circuit: {n_edges} edges; loss {chosen['circuit']:.5f} ({ratio_kept:.2f}x the full model); "
      f"ablated {chosen['ablated']:.4g} ({ratio_ablated:.3g}x)")
at17 = rows[16]
S.record(circuit_edges=n_edges, circuit_loss=chosen["circuit"], ablated_loss=chosen["ablated"],
         circuit_over_full=ratio_kept, ablated_over_full=ratio_ablated,
         circuit_17_loss=at17["circuit"], ablated_17_loss=at17["ablated"],
         targets_met=bool(n_edges <= 20 and ratio_kept <= 2 and ratio_ablated >= 100))

fig, ax = plt.subplots(1, 2, figsize=(9, 3))
ax[0].semilogy(sizes, [r["circuit"] for r in rows], marker=".")
ax[0].axhline(full_loss, color="k", ls=":", lw=1, label="full model")
ax[0].set(xlabel="edges kept (top by EAP-IG)", ylabel="test loss", title="circuit only")
ax[1].semilogy(sizes, [r["ablated"] for r in rows], marker=".", color="C3")
ax[1].axhline(full_loss, color="k", ls=":", lw=1)
ax[1].set(xlabel="edges removed (top by EAP-IG)", title="circuit ablated")
ax[0].legend(fontsize=7)
fig.tight_layout()
S.figure(fig, "circuit_sizes.png")

# %% [markdown]
# **Full setting, 2026-11-21** (x86_64, 2 CPUs shared with other jobs, 1 torch thread,
# torch 2.13.0+cpu, Python 3.11.7; 20,000 epochs in 844 s under that load): full-model test
# loss 0.00453, 10 parameters above 1e-3 (L1 11.47). The chosen circuit has **10 weight
# entries** (target <= 20; published 17), circuit-only loss **0.0085, 1.88x** the full
# model (target <= 2x), and with the circuit removed the loss is **55,610, 1.2e7x** the
# full model (target >= 100x; published about 25,000). All three targets met. The top 11
# entries bring the circuit-only loss to 0.0044, the full model's.

# %% [markdown]
# The circuit, drawn neuron by neuron: the weight entries (line width by score), joined by
# the links that carry no weight (relu, the min aggregation, the gather of `x_j`), which are
# added to the drawing to show the chain:

# %%
for e in circuit:
    print(f"  W = {weight_of(hooked, e):+.4f}  {label(e)}")
S.figure(plot_circuit(hooked, circuit, textbook, caption=S.caption), "circuit.png")

# %% [markdown]
# One path runs through the network: the neighbour's estimate `x_j` and the edge weight
# meet in one message neuron of round 0, which survives the min aggregation into one
# update neuron and one of the 8 channels; round 1 repeats the pattern on that channel and
# writes the output. That is Bellman-Ford's relaxation `min_u (d_u + w_uv)`, twice. The
# entries from the node's own input (`hook_input` to the update MLP) carry the
# "keep what I have" part; their weights are tiny, but the inputs are 100, so they matter.
#
# ## 3. Over training: formation and pruning
#
# Every checkpoint gets its own EAP-IG circuit (top entries until the loss is within 2x of
# that checkpoint's); we also run the *final* circuit on each checkpoint's weights and sum
# the L1 norm inside and outside it.

# %%
final = set(circuit)
final_l1 = {}
over = []
for epoch, state in checkpoints:
    net.load_state_dict(state)
    h = hookgnn.from_pyg(net, example=test)
    with torch.no_grad():
        loss_ck = float(relative_error(net(test.x, test.edge_index, edge_attr=test.edge_attr), test).mean())
    sc = linear_edges(h, eap(h, test, corrupted, distance_se, ig_steps=S.pick(4, 20), level="weight"))
    order_ck = ranked(sc)
    grid = [n for n in (5, 8, 10, 12, 15, 20, 30, 50, 100, 200, 500, 1000, 2000, 5000) if n <= len(order_ck)]
    need = next((r["edges"] for r in sweep_sizes(h, test, relative_error, order_ck, grid)
                 if r["circuit"] <= 2 * loss_ck), None)
    universe = list(sc)
    final_on_ck = evaluate(h, test, test, relative_error, Circuit.of(circuit), universe, ablation="zero")
    l1_in = sum(abs(weight_of(h, e)) for e in circuit)
    l1_all = sum(p.abs().sum().item() for n_, p in net.named_parameters() if n_.endswith("weight"))
    top = set(order_ck[:n_edges])
    over.append({"epoch": epoch, "loss": loss_ck, "edges_needed": need, "final_circuit_loss": final_on_ck,
                 "l1_circuit": l1_in, "l1_rest": l1_all - l1_in, "jaccard_with_final": jaccard(top, final)})
    print(f"epoch {epoch:6d}: loss {loss_ck:.4f}; own circuit needs {need} edges; final circuit alone "
          f"{final_on_ck:.4g}; L1 in circuit {l1_in:.2f}, rest {l1_all - l1_in:.2f}; "
          f"top-{n_edges} overlap with final {top and len(top & final) / len(top | final):.2f}")
net.load_state_dict(checkpoints[-1][1])
S.record(over_training=over)

fig, ax = plt.subplots(1, 2, figsize=(10, 3.2))
ep = [o["epoch"] for o in over]
ax[0].semilogy(ep, [o["loss"] for o in over], label="full model")
ax[0].semilogy(ep, [o["final_circuit_loss"] for o in over], label="final circuit alone")
ax[0].set(xlabel="epoch", ylabel="test loss")
ax[0].legend(fontsize=7)
ax[1].semilogy(ep, [o["l1_circuit"] for o in over], label="L1 of the circuit's weights")
ax[1].semilogy(ep, [o["l1_rest"] for o in over], label="L1 of every other weight")
ax3 = ax[1].twinx()
ax3.semilogy(ep, [o["edges_needed"] or float("nan") for o in over], color="C3", ls=":", marker=".",
             label="edges its own circuit needs")
ax[1].set(xlabel="epoch")
fig.legend(loc="lower center", fontsize=7, ncol=3)
fig.tight_layout(rect=(0, 0.08, 1, 1))
S.figure(fig, "over_training.png")

# %% [markdown]
# Early on the network needs hundreds to thousands of weight entries to stay within 2x of
# its own loss, and the final circuit alone computes nothing useful. The circuit's weights
# grow first (formation); afterwards L1 drives every other weight towards zero (pruning),
# the circuit a checkpoint needs shrinks to the final one, and the final circuit alone
# becomes as good as the whole network.
#
# ## 4. The scoring formula: textbook against the published code
#
# The textbook neuron-level EAP-IG score of the entry $W_{ji}$ of a Linear
# $z = W u + b$ is
#
# $$S_{i \to j} = W_{ji} \sum_r \Delta u_{r,i}\, \bar g_{r,j}, \qquad \bar g = \partial m / \partial z,$$
#
# the input difference times the weight times the gradient at the output. The published
# code takes the activation difference of the Linear's **output** (after the activation
# that follows it) and multiplies it by the gradient at the Linear's **input**
# ($\bar g W$), with no weight of its own:
#
# $$S^{\mathrm{pub}}_{i \to j} = \Big|\sum_r \Delta a_{r,j}\, (\bar g_r W)_{r,i}\Big|.$$
#
# Both read the same differences and gradients here (the same IG path and metric), so only
# the formula differs.

# %%
attr = attribute(hooked, test, corrupted, distance_se, ig_steps=20)
published = published_formula(hooked, attr)
order_pub = ranked(published)
print("top 10 by the published formula:")
for k, e in enumerate(order_pub[:10]):
    print(f"  {k + 1:2d}. W = {weight_of(hooked, e):+.5f}  textbook rank {order.index(e) + 1:5d}  {label(e)}")
tiny = [(k + 1, e) for k, e in enumerate(order_pub[:20]) if abs(weight_of(hooked, e)) < 1e-3]
if tiny:
    k, e = tiny[0]
    alone = evaluate(hooked, test, test, relative_error, Circuit(), [e], ablation="zero")
    print(f"a near-zero weight ranks {k}: W = {weight_of(hooked, e):+.2e} ({label(e)}); zeroing it alone "
          f"moves the test loss from {full_loss:.5f} to {alone:.5f}")
rows_pub = sweep_sizes(hooked, test, relative_error, order_pub, sizes)
chosen_pub = next((r for r in rows_pub if r["circuit"] <= 2 * full_loss), None)
same_size = set(order_pub[:n_edges])
print(f"published formula: the top {n_edges} give loss {rows_pub[n_edges - 1]['circuit']:.4g} "
      f"(textbook: {chosen['circuit']:.4g}); Jaccard with the textbook circuit "
      f"{jaccard(same_size, set(circuit)):.2f}; smallest top-n within 2x: "
      f"{chosen_pub['edges'] if chosen_pub else 'none up to 30'}")
print(" n   textbook top-n loss   published top-n loss   |W| < 1e-3 among the published top n")
for n in range(n_edges, 21):
    small = sum(abs(weight_of(hooked, e)) < 1e-3 for e in order_pub[:n])
    print(f"{n:2d}   {rows[n - 1]['circuit']:19.5f}   {rows_pub[n - 1]['circuit']:20.5f}   {small}")
S.record(published_first_tiny_weight_rank=tiny[0][0] if tiny else None,
         textbook_tiny_in_top20=sum(abs(weight_of(hooked, e)) < 1e-3 for e in order[:20]),
         published_tiny_in_top20=sum(abs(weight_of(hooked, e)) < 1e-3 for e in order_pub[:20]),
         published_circuit_loss_same_size=rows_pub[n_edges - 1]["circuit"],
         published_edges_within_2x=chosen_pub["edges"] if chosen_pub else None,
         published_jaccard_same_size=jaccard(same_size, set(circuit)))

fig, ax = plt.subplots(figsize=(5, 3))
ax.semilogy(sizes, [r["circuit"] for r in rows], marker=".", label="textbook EAP-IG")
ax.semilogy(sizes, [r["circuit"] for r in rows_pub], marker=".", label="published formula")
ax.axhline(full_loss, color="k", ls=":", lw=1, label="full model")
ax.set(xlabel="edges kept", ylabel="circuit-only test loss")
ax.legend(fontsize=7)
S.figure(fig, "formula.png")
print("results:", S.save())
