"""eap streamed over chunks of graphs: message scores against exact patching on a linear model,
for batches of random graphs (empty ones, isolated nodes, self-loops, parallel edges) whose edges
are not in graph order, in every chunking; hooks marked read_only. (Weight edges over graphs of
many sizes: tests/test_interop_minar.py, against the textbook formula in plain torch.)"""

from __future__ import annotations

import pytest
import torch
from handbuilt import no_hooks_left
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import batches
from torch import nn

from hookgnn import Graph, HookedGNN, HookedMessagePassing
from hookgnn.attribution import eap, message_edge_scores
from hookgnn.metrics import OutputSum
from hookgnn.patching import messages, patch
from hookgnn.points import HookError, read_only
from hookgnn.spec import FeatureSpec

SPEC = {"d": FeatureSpec("output", "node", "scalar")}

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread (tests/conftest.py)


class LinearSum(HookedMessagePassing):
    """m = A [h_u, e], a = sum, h' = U [a, h]: the output is linear in every message."""

    def __init__(self, d: int) -> None:
        super().__init__(aggr="sum")
        self.msg = nn.Linear(2 * d, d)
        self.upd = nn.Linear(2 * d, d)

    def message(self, h_src, h_dst, edge_attr):  # noqa: ANN001, ANN201
        return self.msg(torch.cat([h_src, edge_attr], -1))

    def update(self, aggr, h):  # noqa: ANN001, ANN201
        return self.upd(torch.cat([aggr, h], -1))


def _shuffled_edges(g: Graph, seed: int) -> Graph:
    """``g`` with its edges in a random order (graphs interleaved): chunks must put scores back."""
    perm = torch.randperm(g.num_edges, generator=torch.Generator().manual_seed(seed))
    return g.replace(edge_index=g.edge_index[:, perm], edge_attr=g.edge_attr[perm])


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=batches(min_graphs=1, max_graphs=4, max_nodes=5, max_edges=8, node_features=2, edge_features=1),
       seed=st.integers(0, 3), rows=st.sampled_from([1, 7, 1 << 15]))
def test_eap_message_scores_equal_exact_patching_on_a_linear_model_in_any_chunking(batch, seed, rows):
    torch.manual_seed(seed)
    model = HookedGNN(LinearSum, d_hidden=3, node_in=2, edge_in=1, spec=SPEC, max_steps=2, tie_weights=False)
    clean = _shuffled_edges(batch, seed)
    corrupted = clean.replace(x=torch.randn_like(clean.x), edge_attr=torch.randn_like(clean.edge_attr))
    metric = OutputSum("d")
    exact = patch(model, clean, corrupted, metric, messages(model))
    scores = eap(model, clean, corrupted, metric, level="message", rows_per_forward=rows)
    table = message_edge_scores(scores).values if clean.num_edges else torch.zeros(2, 0)
    scale = float(exact.values.abs().max()) if exact.values.numel() else 1.0
    torch.testing.assert_close(table, exact.values, atol=1e-5 * max(scale, 1.0), rtol=1e-4)
    assert scores.baseline == pytest.approx(exact.baseline, rel=1e-5, abs=1e-5)
    assert no_hooks_left(model)


def test_a_read_only_hook_gets_the_activation_itself_and_may_not_edit_it():
    torch.manual_seed(0)
    model = HookedGNN("mpnn", d_hidden=4, node_in=2, spec=SPEC, max_steps=1)
    g = Graph(x=torch.randn(3, 2), edge_index=torch.tensor([[0, 1], [1, 2]]))
    seen: list[torch.Tensor] = []
    name = "layers.0.hook_message"

    @read_only
    def look(act, hook):  # noqa: ANN001, ANN202
        seen.append(act)

    _, cache = model.run_with_cache(g, names_filter=[name])
    model.run_with_hooks(g, fwd_hooks=[(name, look), (name, lambda a, hook: seen.append(a))])
    assert seen[0].data_ptr() != seen[1].data_ptr()  # the unmarked hook got its own copy
    torch.testing.assert_close(seen[0], cache[name], atol=0, rtol=0)

    @read_only
    def edit(act, hook):  # noqa: ANN001, ANN202
        act.mul_(2)

    with pytest.raises(HookError, match="read_only.*in place"):
        model.run_with_hooks(g, fwd_hooks=[(name, edit)])
    assert no_hooks_left(model)
