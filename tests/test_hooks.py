"""Hook points on a HookedGNN: naming, forward/backward hooks, contexts, no leaks."""

import pytest
import torch

from hookgnn import Graph, HookedGNN, HookError, HookPoint


def minagg_model(steps: int = 3, d: int = 4) -> HookedGNN:
    torch.manual_seed(0)
    return HookedGNN("minagg", d_hidden=d, node_in=1, edge_in=1, max_steps=steps)


def small_graph() -> Graph:
    gen = torch.Generator().manual_seed(1)
    edge_index = torch.tensor([[0, 1, 1, 2, 3, 0, 2], [1, 2, 2, 0, 3, 0, 2]])  # multi-edge, self-loops, isolated 4
    return Graph(x=torch.randn(5, 1, generator=gen), edge_index=edge_index,
                 edge_attr=torch.rand(7, 1, generator=gen))


def reference_minagg_forward(model: HookedGNN, graph: Graph, steps: int, h0: torch.Tensor | None = None,
                             patch: tuple[int, int, float] | None = None) -> torch.Tensor:
    """MinAgg rounds written out by hand: loops over nodes and their incoming edges.

    ``patch = (round, edge, value)`` sets that edge's message to ``value`` in that round.
    """
    h = model.node_encoder(graph.x) if h0 is None else h0
    e = model.edge_encoder(graph.edge_attr)
    src, dst = graph.edge_index.tolist()
    for t in range(steps):
        layer = model.layers[t]
        msgs = [torch.relu(layer.agg(torch.cat([h[u], e[i]]))) for i, u in enumerate(src)]
        if patch is not None and patch[0] == t:
            msgs[patch[1]] = torch.full_like(msgs[patch[1]], patch[2])
        rows = []
        for v in range(graph.num_nodes):
            incoming = [msgs[i] for i in range(len(src)) if dst[i] == v]
            aggr = torch.stack(incoming).min(dim=0).values if incoming else torch.zeros_like(h[v])
            rows.append(layer.up(torch.cat([aggr, h[v]])))
        h = torch.stack(rows)
    return h


def assert_no_hooks(model: HookedGNN) -> None:
    assert all(info.num_fwd == 0 and info.num_bwd == 0 for info in model.list_hooks())


def test_hook_names_are_module_paths_with_known_axes():
    model = minagg_model(steps=3)
    for name, hp in model.hook_dict.items():
        assert model.get_submodule(name) is hp and hp.name == name
    for t in range(3):
        assert model.hook_dict[f"layers.{t}.hook_message"].axis == "edge"
        assert model.hook_dict[f"layers.{t}.hook_src"].axis == "edge"
        assert model.hook_dict[f"layers.{t}.hook_aggregation"].axis == "node"
        assert model.hook_dict[f"layers.{t}.hook_update"].axis == "node"
    assert model.hook_dict["hook_edge_embed"].axis == "edge"


def test_unknown_hook_name_raises_key_error_listing_close_matches():
    with pytest.raises(KeyError, match=r"layers\.1\.hook_message"):
        minagg_model().add_hook("layers.1.hook_mesage", lambda t, hook: None)


def test_hooked_forward_without_hooks_matches_reference_loop():
    model, g = minagg_model(), small_graph()
    torch.testing.assert_close(model(g).hidden, reference_minagg_forward(model, g, 3))


@pytest.mark.parametrize(("round_", "edge"), [(0, 1), (1, 4), (2, 0)])
def test_replacing_a_message_equals_hand_modified_forward(round_, edge):
    model, g = minagg_model(), small_graph()

    def set_message(t: torch.Tensor, hook: HookPoint) -> torch.Tensor:
        t = t.clone()
        t[edge] = -0.5
        return t

    out = model.run_with_hooks(g, fwd_hooks=[(f"layers.{round_}.hook_message", set_message)])
    expected = reference_minagg_forward(model, g, 3, patch=(round_, edge, -0.5))
    torch.testing.assert_close(out.hidden, expected)
    assert not torch.allclose(out.hidden, model(g).hidden)
    assert_no_hooks(model)


def test_backward_hook_fires_after_run_with_hooks_returned():
    model, g = minagg_model(), small_graph()
    seen: list[torch.Tensor] = []
    out = model.run_with_hooks(g, bwd_hooks=[("layers.1.hook_update", lambda grad, hook: seen.append(grad))])
    assert_no_hooks(model)
    assert not seen
    out.hidden.sum().backward()
    assert len(seen) == 1 and seen[0].shape == (5, 4)
    # d(sum of final state)/d(state after round 1), by hand: one more MinAgg round.
    h1 = reference_minagg_forward(model, g, 2).detach().requires_grad_()
    e = model.edge_encoder(g.edge_attr)
    src, dst = g.edge_index
    layer = model.layers[2]
    msgs = torch.relu(layer.agg(torch.cat([h1[src], e], dim=1)))
    aggr = torch.stack([msgs[dst == v].min(0).values if (dst == v).any() else torch.zeros(4) for v in range(5)])
    (grad,) = torch.autograd.grad(layer.up(torch.cat([aggr, h1], 1)).sum(), h1)
    torch.testing.assert_close(seen[0], grad)


def test_backward_hook_can_replace_the_gradient():
    model, g = minagg_model(), small_graph()
    model(g).hidden.sum().backward()
    plain = model.node_encoder.lin.weight.grad.clone()
    model.zero_grad()
    out = model.run_with_hooks(g, bwd_hooks=[("hook_node_embed", lambda grad, hook: 3 * grad)])
    out.hidden.sum().backward()
    torch.testing.assert_close(model.node_encoder.lin.weight.grad, 3 * plain)


def test_hooks_removed_when_a_hook_raises():
    model, g = minagg_model(), small_graph()

    def boom(t, hook):
        raise RuntimeError("hook failed")

    with pytest.raises(RuntimeError, match="hook failed"):
        model.run_with_hooks(g, fwd_hooks=[("layers.0.hook_message", boom), ("hook_node_embed", lambda t, hook: None)],
                             bwd_hooks=[("layers.1.hook_update", lambda t, hook: None)])
    assert_no_hooks(model)


def test_hooks_removed_when_the_forward_raises():
    model, g = minagg_model(steps=2), small_graph()
    with pytest.raises(ValueError, match="max_steps=2"):
        model.run_with_hooks(g, steps=5, fwd_hooks=[("layers.0.hook_message", lambda t, hook: None)])
    wrong_width = HookedGNN("minagg", 4, node_in=3, edge_in=1)
    with pytest.raises(ValueError, match="graph.x has 1 features"):
        wrong_width.run_with_cache(g, grad_metric=lambda out: out.hidden.sum())
    assert_no_hooks(model)
    assert_no_hooks(wrong_width)


def test_nested_contexts_remove_exactly_their_own_hooks():
    model, g = minagg_model(), small_graph()
    permanent = model.add_hook("hook_node_embed", lambda t, hook: None, is_permanent=True)
    with model.hooks(fwd_hooks=[("layers.0.hook_message", lambda t, hook: None)]):
        with pytest.raises(KeyError):
            with model.hooks(fwd_hooks=[("layers.1.hook_message", lambda t, hook: None), ("nope", lambda t, hook: None)]):
                pass
        assert model.hook_dict["layers.1.hook_message"]._fwd == []
        with model.hooks(fwd_hooks=[("layers.0.hook_message", lambda t, hook: None)]):
            assert len(model.hook_dict["layers.0.hook_message"]._fwd) == 2
        assert len(model.hook_dict["layers.0.hook_message"]._fwd) == 1
    assert model.hook_dict["layers.0.hook_message"]._fwd == []
    assert len(model.hook_dict["hook_node_embed"]._fwd) == 1
    model.reset_hooks()
    assert len(model.hook_dict["hook_node_embed"]._fwd) == 1
    model.reset_hooks(including_permanent=True)
    assert_no_hooks(model)
    permanent.remove()  # removing twice is harmless


def test_hook_returning_a_wrong_shape_raises_an_error_naming_hook_and_shapes():
    model, g = minagg_model(), small_graph()
    with pytest.raises(HookError, match=r"layers\.2\.hook_aggregation returned shape \(2, 4\).*\(5, 4\)"):
        model.run_with_hooks(g, fwd_hooks=[("layers.2.hook_aggregation", lambda t, hook: t[:2])])
    assert_no_hooks(model)


def test_predicate_hooks_and_handle_remove_everything_they_added():
    model, g = minagg_model(), small_graph()
    calls: list[str] = []
    handle = model.add_hook(lambda n: n.endswith("hook_aggregation"), lambda t, hook: calls.append(hook.name))
    model(g)
    assert calls == [f"layers.{t}.hook_aggregation" for t in range(3)]
    handle.remove()
    assert_no_hooks(model)
    with pytest.raises(KeyError, match="selects no hook point"):
        model.add_hook(lambda n: False, lambda t, hook: None)


def test_prepend_runs_a_hook_first():
    model, g = minagg_model(), small_graph()
    order: list[str] = []
    model.add_hook("hook_node_embed", lambda t, hook: order.append("a"))
    model.add_hook("hook_node_embed", lambda t, hook: order.append("b"), prepend=True)
    model(g)
    assert order == ["b", "a"]


def test_run_with_cache_grad_metric_matches_autograd_through_reference_forward():
    model, g = minagg_model(), small_graph()
    metric = lambda out: (out.hidden[:, 0] ** 2).sum()  # noqa: E731
    _, cache = model.run_with_cache(g, names_filter=["hook_node_embed", "layers.1.hook_message"], grad_metric=metric)
    assert set(cache) == {"hook_node_embed", "layers.1.hook_message"} and set(cache.grads) == set(cache)
    h0 = model.node_encoder(g.x).detach().requires_grad_()
    (expected,) = torch.autograd.grad((reference_minagg_forward(model, g, 3, h0=h0)[:, 0] ** 2).sum(), h0)
    torch.testing.assert_close(cache.grads["hook_node_embed"], expected)
    assert all(p.grad is None for p in model.parameters())  # no side effect on parameters


def test_grad_metric_works_with_frozen_parameters():
    model, g = minagg_model(), small_graph()
    model.requires_grad_(False)
    _, cache = model.run_with_cache(g, names_filter=lambda n: "update" in n, grad_metric=lambda o: o.hidden.sum())
    torch.testing.assert_close(cache.grads["layers.2.hook_update"], torch.ones(5, 4))


def test_asking_for_more_rounds_than_max_steps_raises():
    with pytest.raises(ValueError, match="asked for 4 rounds.*max_steps=3"):
        minagg_model(steps=3)(small_graph(), steps=4)


def test_tied_rounds_share_parameters_and_stacked_rounds_do_not():
    tied = minagg_model(steps=5)
    stacked = HookedGNN("minagg", d_hidden=4, node_in=1, edge_in=1, max_steps=5, tie_weights=False)
    assert tied.layers[4].agg.weight is tied.layers[0].agg.weight
    assert stacked.layers[4].agg.weight is not stacked.layers[0].agg.weight
    per_layer = sum(p.numel() for p in tied.layers[0].parameters())
    n_tied, n_stacked = (sum(p.numel() for p in m.parameters()) for m in (tied, stacked))
    assert n_stacked - n_tied == 4 * per_layer


def test_fewer_steps_run_fewer_rounds():
    model, g = minagg_model(steps=4), small_graph()
    _, cache = model.run_with_cache(g, steps=2)
    assert cache.rounds == [0, 1]
    torch.testing.assert_close(model(g, steps=2).hidden, reference_minagg_forward(model, g, 2))


def test_hook_point_without_hooks_returns_its_input_object():
    hp = HookPoint("node")
    x = torch.randn(3)
    assert hp(x) is x


def test_backward_hook_on_an_activation_without_grad_raises_naming_the_hook():
    model, g = minagg_model(), small_graph()
    with torch.no_grad(), pytest.raises(HookError, match=r"layers\.1\.hook_update can never fire"):
        model.run_with_hooks(g, bwd_hooks=[("layers.1.hook_update", lambda grad, hook: None)])
    assert_no_hooks(model)


def test_round_of_and_counterparts_come_from_the_model_and_survive_deepcopy():
    import copy

    model = copy.deepcopy(minagg_model(steps=3))
    assert model.round_of("layers.2.hook_message_pre") == 2 and model.round_of("hook_node_embed") is None
    assert model.counterparts("layers.1.hook_src") == [f"layers.{t}.hook_src" for t in range(3)]
    _, cache = model.run_with_cache(small_graph())
    assert cache.rounds == [0, 1, 2] and ("message", -1) in cache


# ------------------------------------------------------------------ correctness issue
@pytest.mark.parametrize("wrong", [torch.float64, torch.float16])
def test_hook_returning_another_dtype_raises_naming_hook_and_both_dtypes(wrong):
    model, g = minagg_model(), small_graph()
    with pytest.raises(HookError, match=rf"layers\.1\.hook_message returned dtype {wrong}.*torch\.float32"):
        model.run_with_hooks(g, fwd_hooks=[("layers.1.hook_message", lambda t, hook: t.to(wrong))])
    assert_no_hooks(model)


def test_hook_returning_a_bool_mask_is_refused_rather_than_promoted():
    model, g = minagg_model(), small_graph()
    with pytest.raises(HookError, match=r"hook_update returned dtype torch\.bool"):
        model.run_with_hooks(g, fwd_hooks=[("layers.0.hook_update", lambda t, hook: t > 0)])


def test_hook_returning_a_tensor_on_another_device_raises_naming_both_devices():
    model, g = minagg_model(), small_graph()
    with pytest.raises(HookError, match=r"layers\.0\.hook_src returned a tensor on meta.*on cpu"):
        model.run_with_hooks(g, fwd_hooks=[("layers.0.hook_src", lambda t, hook: t.to("meta"))])
    assert_no_hooks(model)


def test_backward_hook_returning_another_dtype_raises():
    model, g = minagg_model(), small_graph()
    out = model.run_with_hooks(g, bwd_hooks=[("layers.1.hook_update", lambda grad, hook: grad.double())])
    with pytest.raises(HookError, match=r"backward hook on layers\.1\.hook_update returned dtype torch\.float64"):
        out.hidden.sum().backward()


def test_a_factory_returning_one_shared_module_for_every_round_is_refused():
    from hookgnn.nn.minagg import MinAgg

    shared = MinAgg(4, d_edge=4)
    with pytest.raises(HookError, match=r"reachable as both 'layers\.0\.hook_src' and 'layers\.1\.hook_src'"):
        HookedGNN(lambda d: shared, d_hidden=4, node_in=1, edge_in=1, max_steps=3, tie_weights=False)


def test_grad_metric_works_inside_torch_no_grad_and_matches_outside():
    model, g = minagg_model(), small_graph()
    metric = lambda out: (out.hidden[:, 0] ** 2).sum()  # noqa: E731
    _, outside = model.run_with_cache(g, grad_metric=metric)
    with torch.no_grad():
        _, inside = model.run_with_cache(g, grad_metric=metric)
    assert set(inside.grads) == set(outside.grads)
    for name in outside.grads:
        torch.testing.assert_close(inside.grads[name], outside.grads[name], msg=name)
    with torch.no_grad():
        model.run_with_cache(g, grad_metric=metric)
        assert not torch.is_grad_enabled()  # the caller's no-grad mode is restored


@pytest.mark.parametrize(("method", "keyword", "hint"), [
    ("run_with_cache", "incl_bwd", "grad_metric"),
    ("run_with_cache", "remove_batch_dim", r"cache\.graph\(i\)"),
    ("run_with_cache", "return_cache_object", "always returns an ActivationCache"),
    ("run_with_hooks", "reset_hooks_end", "always removed"),
    ("run_with_hooks", "clear_contexts", "remove exactly their own hooks"),
])
def test_transformer_lens_keywords_point_to_the_hookgnn_equivalent(method, keyword, hint):
    model, g = minagg_model(), small_graph()
    with pytest.raises(TypeError, match=rf"{method}\(\) has no '{keyword}' argument.*{hint}"):
        getattr(model, method)(g, **{keyword: True})
    assert_no_hooks(model)


def test_reset_hooks_refuses_a_positional_argument_transformer_lens_style():
    model = minagg_model()
    model.add_perma_hook("hook_node_embed", lambda t, hook: None)
    with pytest.raises(TypeError, match="keyword arguments only"):
        model.reset_hooks(True)
    assert model.list_hooks()[0].num_fwd == 1  # nothing was removed by the refused call
    model.reset_hooks()
    assert model.hook_dict["hook_node_embed"]._fwd  # permanent: kept
    model.reset_hooks(including_permanent=True)
    assert_no_hooks(model)


def test_transformer_lens_aliases():
    model = minagg_model()
    assert model.mod_dict["layers.1.agg"] is model.layers[1].agg
    assert model.hook_points() == list(model.hook_dict.values())
    _, cache = model.run_with_cache(small_graph())
    torch.testing.assert_close(cache.stack_activation("message"),
                               torch.stack([cache[f"layers.{t}.hook_message"] for t in range(3)]))


def test_graph_and_model_of_different_dtypes_raise_naming_both():
    model, g = minagg_model(), small_graph()
    with pytest.raises(ValueError, match=r"graph features are torch\.float64 but the model's parameters are torch\.float32"):
        model(g.to(torch.float64))
    torch.testing.assert_close(model.double()(g.to(torch.float64)).hidden.float(), minagg_model()(g).hidden)
