"""ActivationCache: keys, stacking, graph-aware selection, gradients."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from hookgnn import ActivationCache, Graph, HookedGNN


def mpnn_model(steps: int = 3) -> HookedGNN:
    torch.manual_seed(0)
    return HookedGNN("mpnn", d_hidden=6, node_in=2, edge_in=1, max_steps=steps).eval()


@st.composite
def random_graph(draw) -> Graph:
    n = draw(st.integers(0, 5))
    pairs = draw(st.lists(st.tuples(st.integers(0, max(n - 1, 0)), st.integers(0, max(n - 1, 0))), max_size=8)) if n else []
    gen = torch.Generator().manual_seed(draw(st.integers(0, 10_000)))
    ei = torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).t()
    return Graph(x=torch.randn(n, 2, generator=gen), edge_index=ei, edge_attr=torch.rand(ei.shape[1], 1, generator=gen))


@given(st.lists(random_graph(), min_size=1, max_size=4))
def test_batched_cache_graph_i_equals_running_graph_i_alone(graphs):
    model = mpnn_model()
    metric = lambda out: out.hidden.pow(2).sum()  # noqa: E731  (a sum over graphs: per-graph grads agree)
    _, batched = model.run_with_cache(Graph.collate(graphs), grad_metric=metric)
    for i, g in enumerate(graphs):
        _, alone = model.run_with_cache(g, grad_metric=metric)
        sub = batched.graph(i)
        assert set(sub) == set(alone)
        for name in alone:
            torch.testing.assert_close(sub[name], alone[name], msg=name)
            torch.testing.assert_close(sub.grads[name], alone.grads[name], msg=name)


def test_shorthand_keys_and_negative_rounds():
    model = mpnn_model(steps=4)
    g = Graph(x=torch.randn(3, 2), edge_index=torch.tensor([[0, 1], [1, 2]]), edge_attr=torch.rand(2, 1))
    _, cache = model.run_with_cache(g)
    assert cache["message", 2] is cache["layers.2.hook_message"]
    assert cache["message", -1] is cache["layers.3.hook_message"]
    assert cache["message_mlp.hook_post", -4] is cache["layers.0.message_mlp.hook_post"]
    assert ("update", 1) in cache and ("update", 9) not in cache
    with pytest.raises(KeyError, match="did you mean"):
        cache["layers.1.hook_mesage"]
    assert len(cache) == len(model.hook_dict) and "rounds [0, 1, 2, 3]" in repr(cache)


def test_stack_gives_one_tensor_over_rounds_and_names_mismatched_shapes():
    model = mpnn_model(steps=3)
    g = Graph(x=torch.randn(4, 2), edge_index=torch.tensor([[0, 1, 3], [1, 2, 2]]), edge_attr=torch.rand(3, 1))
    _, cache = model.run_with_cache(g)
    stacked = cache.stack("message")
    assert stacked.shape == (3, 3, 6)
    torch.testing.assert_close(stacked[1], cache["message", 1])
    odd = ActivationCache({"layers.0.hook_x": torch.zeros(2, 3), "layers.1.hook_x": torch.zeros(2, 4)},
                          axes={"layers.0.hook_x": "node", "layers.1.hook_x": "node"})
    with pytest.raises(ValueError, match="shapes differ across rounds"):
        odd.stack("x")


def test_select_keeps_given_rows_of_node_and_edge_entries():
    model = mpnn_model()
    g = Graph(x=torch.randn(4, 2), edge_index=torch.tensor([[0, 1, 3], [1, 2, 2]]), edge_attr=torch.rand(3, 1))
    _, cache = model.run_with_cache(g, grad_metric=lambda o: o.hidden.sum())
    sel = cache.select(nodes=torch.tensor([3, 1]), edges=torch.tensor([2]))
    torch.testing.assert_close(sel["update", 0], cache["update", 0][[3, 1]])
    torch.testing.assert_close(sel["message", 1], cache["message", 1][[2]])
    torch.testing.assert_close(sel.grads["update", 2], cache.grads["update", 2][[3, 1]])
    torch.testing.assert_close(sel["hook_graph_embed"], cache["hook_graph_embed"])
    with pytest.raises(IndexError, match="node index out of range"):
        cache.select(nodes=torch.tensor([7]))


def test_to_moves_activations_and_gradients():
    model = mpnn_model()
    g = Graph(x=torch.randn(2, 2), edge_index=torch.tensor([[0], [1]]), edge_attr=torch.rand(1, 1))
    _, cache = model.run_with_cache(g, grad_metric=lambda o: o.hidden.sum())
    moved = cache.to("cpu")
    assert moved.grads is not None and set(moved.grads) == set(cache.grads)
    assert moved.input_graph is not None


def test_cache_activations_are_detached():
    model = mpnn_model()
    g = Graph(x=torch.randn(2, 2), edge_index=torch.tensor([[0], [1]]), edge_attr=torch.rand(1, 1))
    _, cache = model.run_with_cache(g)
    assert not any(t.requires_grad for t in cache.values())


def test_a_negative_round_beyond_the_first_names_the_rounds_the_cache_has():
    _, cache = mpnn_model(steps=4).run_with_cache(
        Graph(x=torch.zeros(2, 2), edge_index=torch.tensor([[0], [1]]), edge_attr=torch.zeros(1, 1)))
    torch.testing.assert_close(cache["message", -4], cache["layers.0.hook_message"])
    with pytest.raises(KeyError, match=r"round -5 of 'message' does not exist: the cache holds rounds \[0, 1, 2, 3\]"):
        cache["message", -5]
    with pytest.raises(KeyError, match=r"cached rounds: \[0, 1, 2, 3\]"):
        cache["message", 7]
