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
# # 3. Patching: activation, path and attribution patching, and an estimator audit
#
# On the Bellman-Ford reasoner of tutorial 2 (trained again, or loaded from its cache):
#
# 1. **activation patching**: clean node states into the corrupted run, one (round, node)
#    at a time, as a heatmap;
# 2. **path patching**: the effect of one node on another *through one route only*;
# 3. **message patching**: every single message (round, edge), exactly;
# 4. **attribution patching** and friends: gradient estimates of all of those at once,
#    and an audit of attribution, EAP-IG and AtP* against exact patching
#    (`hookgnn.circuits.audit`), with AtP*'s top messages verified exactly (`verify`);
# 5. **redundancy**: on a hand-set network with two redundant paths, single patches see
#    nothing, a learned mask finds both paths and `redundancy` says they are redundant.
#
# The pair: a graph and its twin with the source moved; the metric: the log-probability
# of the clean predecessor of one query node (one whose predecessor changes).

# %%
import time

import matplotlib

matplotlib.use("Agg")
import torch

from hookgnn.attribution import atp_star, attribute, eap, message_edge_scores
from hookgnn.circuits import Circuit, audit, evaluate, verify
from hookgnn.metrics import PointerLogProb
from hookgnn.patching import message_edges, messages, nodes, patch, path_patch
from hookgnn.patching.components import Component
from hookgnn.tasks import get_task
from hookgnn.tasks.corruptions import sample_pairs
from hookgnn.viz import circuit_explorer, plot_message_circuit, plot_scores, scores_heatmap
from tutorial_settings import bellman_ford_reasoner, settings

S = settings("03_patching")
torch.set_num_threads(1)
bf = get_task("bellman_ford")
model = bellman_ford_reasoner(S, steps=S.pick(100, 400))

clean, corrupted = sample_pairs(bf, 1, "resample_source", "erdos_renyi", seed=7, n=10, p=0.3)
rounds = int(max(clean["num_steps"].max(), corrupted["num_steps"].max())) - 1
dst = clean.edge_index[1]
changed = [v for v in range(clean.num_nodes) if not torch.equal(clean["pi"][dst == v], corrupted["pi"][dst == v])
           and clean["s"][v] == 0 and corrupted["s"][v] == 0]
query = max(changed, key=lambda v: float(clean["d"][v]))
select = torch.zeros(clean.num_nodes)
select[query] = 1.0
metric = PointerLogProb(target=clean["pi"], select=select)
print(f"source {int(clean['s'].argmax())} -> {int(corrupted['s'].argmax())}; query node {query}; {rounds} rounds")

# %% [markdown]
# ## 1. Activation patching
#
# `patch` with the selector `nodes(model, "update")` patches each (round, node) state from
# the clean run into the corrupted one and records the effect: the metric after the patch
# minus `sweep.baseline`, the metric of the unpatched corrupted run. All patches of a round
# run as copies in one disjoint-union batch, resumed at that round.

# %%
states = nodes(model, "update", range(rounds))
hooks = list(states.hooks)  # layers.t.hook_update, one per round
start = time.perf_counter()
sweep = patch(model, clean, corrupted, metric, states, steps=rounds)
sweep_s = time.perf_counter() - start
effect = sweep.values  # metric after each patch minus sweep.baseline
best_round, best_node = divmod(int(effect.flatten().argmax()), effect.shape[1])
print(f"{effect.numel()} patches in {sweep_s:.2f} s; corrupted log-prob {sweep.baseline:.2f}; best: round "
      f"{best_round}, node {best_node} -> {sweep.baseline + float(effect.max()):.2f}")
S.figure(plot_scores(sweep, title=f"change in log p(clean predecessor of {query}) by patching", caption=S.caption),
         "patch_nodes.png")

# %% [markdown]
# ## 2. Path patching
#
# Patching node `u`'s state at round `t` changes everything downstream of it. Path
# patching asks how much of that effect reaches the query **directly**: `u`'s clean state
# is sent only into the query's aggregation of the next round (every other path is held
# at its corrupted value). Compare the two for the query's most useful neighbour one
# round before the last, and for the most useful node that is not a neighbour.

# %%
t = rounds - 2
neighbours = set(clean.edge_index[0][dst == query].tolist()) - {query}
near = max(neighbours, key=lambda u: float(effect[t, u]))
far = max((u for u in range(clean.num_nodes) if u not in neighbours and u != query), key=lambda u: float(effect[t, u]))
for kind, u in (("neighbour", near), ("not a neighbour", far)):
    sender = [Component(hooks[t], u)]
    receiver = [Component(model.round_hook("hook_aggregation", t + 1), query)]
    direct = path_patch(model, clean, corrupted, metric, sender, receiver, steps=rounds)
    print(f"node {u} ({kind} of {query}) at round {t}: total effect {float(effect[t, u]):+.2f}; "
          f"through the query's next aggregation only {direct - sweep.baseline:+.2f}")
    own = path_patch(model, clean, corrupted, metric, sender, [Component(hooks[t + 1], u)], steps=rounds)
    print(f"    through its own next state only {own - sweep.baseline:+.2f}")
    S.record(**{f"path_{kind.split()[-1]}": {"node": u, "total": float(effect[t, u]),
                                             "direct": direct - sweep.baseline, "own": own - sweep.baseline}})

# %% [markdown]
# A node that is not a neighbour acts only through other nodes, so its direct path is 0
# by construction. For the neighbour, the route that matters is usually its *own* next
# state: the pointer decoder scores the edge `u -> query` from both end states, so `u`'s
# state is read directly at the output, not only through the query's aggregation. Path
# patching separates "what u says to v" from "what u changes elsewhere".

# %% [markdown]
# ## 3. Every single message, exactly
#
# `patch` with the selector `messages(model)` patches one message `(t, u -> v)` at a time
# (row `e` of `layers.t.hook_src`, so only that message changes): `[round, edge]` effects. Here in the
# *noising* direction (each corrupted message into the clean run), which asks which
# messages the clean answer needs.

# %%
start = time.perf_counter()
exact = patch(model, clean, corrupted, metric, messages(model, range(rounds)), direction="noising", steps=rounds)
exact_s = time.perf_counter() - start
S.figure(plot_scores(exact, graph=clean, title="noising single messages (exact)", caption=S.caption),
         "patch_messages.png")
universe = message_edges(clean.edge_index, range(rounds), model)
ranked = sorted(universe, key=lambda m: -abs(float(exact[m.carrier.hook][m.edge])))
S.figure(plot_message_circuit(clean, ranked[:6], {m: float(exact[m.carrier.hook][m.edge]) for m in ranked[:6]},
                              query=query, sources=int(clean["s"].argmax()), caption=S.caption), "top_messages.png")
print(f"{exact.values.numel()} messages in {exact_s:.2f} s; the six that matter most: "
      + ", ".join(f"t{m.round}:{m.u}->{m.v}" for m in ranked[:6]))

# %% [markdown]
# The same as an interactive view (`circuit_explorer`): hover an arrow for its round, `u->v` and
# effect; the slider picks the round drawn over the graph. It shows here in a notebook and is
# saved as a page that works offline (`scores_heatmap` does the same for a sweep).

# %%
top = {m: float(exact[m.carrier.hook][m.edge]) for m in ranked[:12]}
explorer = circuit_explorer(clean, list(top), top, query=query, sources=int(clean["s"].argmax()),
                            title="the 12 messages with the largest exact effects")
explorer.save(S.out / "top_messages.html")
scores_heatmap(exact, clean, title="noising single messages (exact)").save(S.out / "patch_messages.html")
explorer

# %% [markdown]
# ## 4. Estimators, audited against exact patching
#
# * attribution patching (`attribute`): one forward and backward, a first-order
#   estimate of every patch;
# * EAP-IG (`eap(..., level="message", ig_steps=16)`): the gradient averaged along the
#   path from clean to corrupted inputs;
# * AtP* (`atp_star`): the round a patch enters recomputed exactly, the rest linearised.
#
# Every estimate, like the exact sweep, holds effects with the same `baseline` (the clean
# run's metric here), so its `.values` compare with `exact.values` number for number.
# `audit` compares each with the exact sweep: signed and absolute Spearman correlation,
# recall of the exact top `k`, and how many messages each ranking needs for a circuit of
# faithfulness 0.9 (everything outside it resampled from the corrupted run).

# %%
carriers = [model.round_hook("hook_src", t) for t in range(rounds)]
estimators = {
    "attribution": lambda: attribute(model, clean, corrupted, metric, names_filter=carriers,
                                     direction="noising", steps=rounds).rows(carriers),
    "EAP-IG": lambda: message_edge_scores(eap(model, clean, corrupted, metric, ig_steps=16, direction="noising",
                                              level="message", steps=rounds)),
    "AtP*": lambda: atp_star(model, clean, corrupted, metric, direction="noising", steps=rounds),
}
table, estimates = [], {}
for name, method in estimators.items():
    start = time.perf_counter()
    estimate = estimates[name] = method()
    seconds = time.perf_counter() - start
    result = audit(model, clean, corrupted, metric, estimate, exact, k=10, warn_below=-1.0, steps=rounds)
    table.append((name, seconds, result))
    print(f"{name:12s} {seconds:6.2f} s  {result}")
print(f"{'exact':12s} {exact_s:6.2f} s")

start = time.perf_counter()
verified = verify(model, clean, corrupted, metric, atp_star(model, clean, corrupted, metric, direction="noising",
                                                             steps=rounds), k=16, steps=rounds)
by_carrier = {m.carrier: m for m in universe}
order = [by_carrier[c] for c in verified.ranked]
run = lambda c: evaluate(model, clean, corrupted, metric, c, universe, steps=rounds)  # noqa: E731
full, empty = run(Circuit.of(universe)), run(Circuit())
need = next((n for n in range(1, len(order) + 1)
             if (run(Circuit.of(order[:n])) - empty) >= 0.9 * (full - empty)), None)
print(f"AtP*, top 16 verified exactly: {time.perf_counter() - start:.2f} s; {need} messages for faithfulness 0.9 "
      f"(exact ranking: {table[0][2].size_exact})")
S.record(sweep_seconds=sweep_s, exact_message_seconds=exact_s, verified_messages_needed=need,
         audit={name: {"seconds": s, "spearman": r.spearman, "abs_spearman": r.abs_spearman,
                       "recall_at_10": r.recall_at_k, "messages_needed": r.size_estimate,
                       "messages_needed_exact": r.size_exact} for name, s, r in table})

scale_note = "each panel on its own colour scale, printed in its title (estimates can overshoot the exact effects)"
S.figure(plot_scores({"exact": exact, **estimates}, graph=clean, title="noising single messages: exact and estimated",
                     caption=scale_note if S.caption is None else f"{scale_note}; {S.caption}"), "estimators.png")
print("results:", S.save())

# %% [markdown]
# On a max-aggregation reasoner, gradients see only the message that wins each feature,
# so attribution and EAP-IG can miss messages whose patch changes the winner; AtP*
# recomputes the round a patch enters exactly (best and second-best message) and ranks
# single messages much closer to exact patching, and verifying its top few exactly puts
# exact numbers where they matter, at a fraction of the cost of the full sweep.

# %% [markdown]
# ## 5. Redundancy: what no single patch can see
#
# Every method above ranks *single* components. When two paths each suffice (an OR),
# ablating one of them changes nothing, so every single patch is 0 and a ranking selects
# nothing. `hookgnn.groundtruth.or_reachability` is a hand-set 2-round reachability network
# whose circuit is known by construction: the source `s` reaches the query `q` through
# `s -> a -> q` and through `s -> b -> q`, either one enough, and a distractor path
# `d -> c -> q` arrives too late. A learned mask (`learn_mask`: one hard-concrete gate per
# message, trained for faithfulness plus sparsity) keeps both paths open (`prune=False`: the
# gates as learned; by default `learn_mask` ends with an exact pruning pass that keeps one
# path, the smallest faithful circuit, and puts the other last in `dropped`), and `redundancy`
# ablates candidates in pairs to report which units are unnecessary alone but necessary
# together.

# %%
from hookgnn.circuits import learn_mask, redundancy  # noqa: E402
from hookgnn.groundtruth import or_reachability  # noqa: E402

gt = or_reachability()
pair = gt.sample_pairs(1, seed=0)[0]
known = pair.sufficient  # the two paths (round-0 and round-1 message of each)
single_or = patch(gt.model, pair.clean, pair.corrupted, gt.metric, messages(gt.model), direction="noising")
print("largest single noising effect:", float(single_or.values.abs().max()))  # 0.0: single patches see nothing

universe_or = gt.messages(pair.clean)
mask = learn_mask(gt.model, pair.clean, pair.corrupted, gt.metric, universe_or, direction="noising", target=0.99,
                  steps=S.pick(60, 150), prune=False, progress=False)
print(mask)
print("mask keeps:", sorted((m.round, m.u, m.v) for m in mask.circuit.items()))
print("both paths kept:", all(path <= set(mask.circuit.items()) for path in known))

report = redundancy(gt.model, pair.clean, pair.corrupted, gt.metric, universe_or, mask)
for group, drop in zip(report.groups, report.drops):  # each group: one message of each path
    print("OR group", [(m.round, m.u, m.v) for m in group], f"joint faithfulness drop {drop:.2f}")
print("redundant units = both paths:", report.members() == pair.circuit)
S.record(or_largest_single_effect=float(single_or.values.abs().max()), or_mask_size=mask.size,
         or_mask_faithfulness=mask.faithfulness, or_groups=len(report.groups),
         or_both_paths_named=report.members() == pair.circuit)
print("results:", S.save())

# %% [markdown]
# Every single noising patch is 0, the mask keeps both paths (faithfulness 1, re-evaluated
# exactly), and the redundancy report pairs each message of `s -> a -> q` with one of
# `s -> b -> q`: each alone unnecessary, any such pair together necessary. Iterative
# pruning (`acdc`) would keep one path only (the smallest faithful circuit); the report
# from its circuit needs `candidates=universe` to see the other. More in the
# discovery guide (`docs/guide/discovery.md`).
