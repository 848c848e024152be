"""The copies engine (hookgnn.patching.copies) against plain loops: one forward per graph."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import graphs

from hookgnn import Graph, HookedGNN
from hookgnn.metrics.per_graph import OutputSum
from hookgnn.patching.copies import chunks, copies_per_forward, copy_means, disjoint_union, metric_per_copy, per_copy
from hookgnn.spec import FeatureSpec

pytestmark = pytest.mark.usefixtures("one_thread")


@given(st.lists(st.integers(), max_size=30), st.integers(1, 8))
def test_chunks_cover_the_items_in_order_with_their_starts(items: list[int], size: int) -> None:
    got = list(chunks(items, size))
    assert [x for _, part in got for x in part] == items
    assert all(len(part) == size for _, part in got[:-1]) and all(0 < len(part) <= size for _, part in got)
    assert [start for start, _ in got] == list(range(0, len(items), size))


def test_chunks_cut_a_tensor_and_refuse_an_empty_chunk() -> None:
    t = torch.arange(5)
    assert [p.tolist() for _, p in chunks(t, 2)] == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="at least one copy"):
        list(chunks([1, 2], 0))


def test_copy_means_refuses_a_ragged_metric() -> None:
    with pytest.raises(ValueError, match="not 2 copies"):
        copy_means(torch.zeros(3), 2)


@settings(max_examples=15, deadline=None)
@given(graphs(node_features=1, edge_features=1, min_nodes=1), st.integers(1, 4), st.integers(0, 2 ** 16))
def test_metric_and_activations_per_copy_match_one_forward_per_graph(g: Graph, k: int, seed: int) -> None:
    torch.manual_seed(0)
    model = HookedGNN("mpnn", 8, node_in=1, edge_in=1, spec={"d": FeatureSpec("output", "node", "scalar")},
                      max_steps=2)
    gen = torch.Generator().manual_seed(seed)
    base = Graph.collate([g, g])  # copies of a batch of two graphs: the metric is a mean over both
    copies = [base.replace(x=torch.randn(base.x.shape, generator=gen)) for _ in range(k)]
    metric, hook = OutputSum("d"), "layers.1.hook_src"
    assert copies_per_forward(model, [hook], k) == k
    batch = disjoint_union(copies)
    with torch.no_grad():
        out, cache = model.run_with_cache(batch, names_filter=[hook])
        got = metric_per_copy(metric, out, batch, k)
        for j, c in enumerate(copies):  # the plain loop: one forward per copy
            out_j, cache_j = model.run_with_cache(c, names_filter=[hook])
            want = metric(out_j, c).double().mean()
            scale = want.abs().item() + 1.0
            torch.testing.assert_close(got[j].double(), want, rtol=1e-5, atol=1e-5 * scale)
            act_j = cache_j[hook]
            torch.testing.assert_close(per_copy(cache[hook], k)[j], act_j, rtol=1e-5,
                                       atol=1e-5 * (act_j.abs().max().item() + 1.0) if act_j.numel() else 1e-5)
