"""Message MLPs in edge chunks (hookgnn.nn.chunking) against the unchunked path and plain torch.

References: the same layer with chunking off (``edge_chunk_size(0)``), and the MPNN
message and layer written out in plain float64 torch (concatenation, MLP, a per-node
loop for the max). Graphs come from hypothesis: empty graphs, isolated nodes,
self-loops and multi-edges included; chunk sizes from 1 edge up.
"""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import graphs
from torch import Tensor

from hookgnn import Graph, HookedGNN
from hookgnn.nn import MPNN, PGN, HookedMessagePassing, edge_chunk_size
from hookgnn.nn.chunking import ENV_VAR, current_edge_chunk_size
from hookgnn.spec import FeatureSpec

D = 4
graphs64 = graphs(node_features=D, edge_features=D, dtype=torch.float64, max_edges=14)
chunk_sizes = st.integers(1, 6)


def seeded(layer: HookedMessagePassing, seed: int) -> HookedMessagePassing:
    torch.manual_seed(seed)
    layer = layer.double()
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(0.5 * torch.randn_like(p))
    return layer


def close(a: Tensor, b: Tensor) -> None:
    scale = max(1.0, b.abs().max().item()) if b.numel() else 1.0
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10 * scale)


def plain_mpnn(layer: MPNN, h: Tensor, g: Graph) -> tuple[Tensor, Tensor]:
    """(messages, output) of ``layer`` in plain torch: z = [x_u, h_u, x_v, h_v, e], max per node."""
    src, dst = g.edge_index
    mlp = layer.message_mlp
    z = torch.cat([g.x[src], h[src], g.x[dst], h[dst], g.edge_attr], dim=-1)
    msg = torch.relu(z @ mlp.lin_in.weight.T + mlp.lin_in.bias) @ mlp.lin_out.weight.T + mlp.lin_out.bias
    aggr = torch.zeros(h.shape[0], msg.shape[1], dtype=h.dtype)
    for v in range(h.shape[0]):
        rows = msg[dst == v]
        if rows.shape[0]:
            aggr[v] = rows.max(dim=0).values
    u = layer.update_mlp
    pre = torch.relu(torch.cat([g.x, h, aggr], -1) @ u.lin_in.weight.T + u.lin_in.bias) @ u.lin_out.weight.T + u.lin_out.bias
    return msg, torch.relu(pre)


def messages(layer: HookedMessagePassing, h: Tensor, g: Graph) -> tuple[Tensor, Tensor]:
    """(what ``hook_message`` saw, the layer's output)."""
    seen: list[Tensor] = []
    handle = layer.hook_message.add_hook(lambda t, hook: seen.append(t.clone()))
    try:
        out = layer(h, g.edge_index, g.edge_attr, x=g.x)
    finally:
        handle.remove()
    return seen[0], out


@settings(max_examples=25, deadline=None)
@given(g=graphs64, size=chunk_sizes, seed=st.integers(0, 100))
def test_chunked_mpnn_matches_unchunked_and_plain_torch(g: Graph, size: int, seed: int) -> None:
    layer = seeded(MPNN(D), seed)
    h = torch.randn(g.num_nodes, D, dtype=torch.float64)
    with edge_chunk_size(0):
        msg_whole, out_whole = messages(layer, h, g)
    with edge_chunk_size(size):
        msg, out = messages(layer, h, g)
    msg_ref, out_ref = plain_mpnn(layer, h, g)
    assert msg.shape == (g.num_edges, D)  # the hook saw every edge at once
    close(msg, msg_whole)
    close(out, out_whole)
    close(msg, msg_ref)
    close(out, out_ref)


@settings(max_examples=15, deadline=None)
@given(g=graphs64, size=chunk_sizes, seed=st.integers(0, 100), kind=st.sampled_from(["mpnn", "pgn"]))
def test_chunked_gradients_match_unchunked(g: Graph, size: int, seed: int, kind: str) -> None:
    layer = seeded(MPNN(D) if kind == "mpnn" else PGN(D), seed)
    twin = copy.deepcopy(layer)
    h = torch.randn(g.num_nodes, D, dtype=torch.float64)
    weights = torch.randn(g.num_nodes, D, dtype=torch.float64)

    def grads(model: HookedMessagePassing, chunk: int) -> list[Tensor]:
        hh, xx, ee = (t.clone().requires_grad_() for t in (h, g.x, g.edge_attr))
        with edge_chunk_size(chunk):
            (model(hh, g.edge_index, ee, x=xx) * weights).sum().backward()
        return [t.grad for t in (hh, xx, ee)] + [p.grad for p in model.parameters()]

    for got, want in zip(grads(layer, size), grads(twin, 0), strict=True):
        close(got if got is not None else torch.zeros(0), want if want is not None else torch.zeros(0))


def _edge_graph(n: int = 9, e: int = 30, seed: int = 0) -> Graph:
    gen = torch.Generator().manual_seed(seed)
    return Graph(x=torch.rand(n, D, generator=gen, dtype=torch.float64),
                 edge_index=torch.randint(0, n, (2, e), generator=gen),
                 edge_attr=torch.rand(e, D, generator=gen, dtype=torch.float64))


@pytest.mark.parametrize("point", ["hook_message", "hook_src", "message_mlp.hook_pre", "message_mlp.hook_post"])
def test_hooks_see_whole_tensors_and_in_place_edits_act_under_chunking(point: str) -> None:
    g = _edge_graph()
    layer = seeded(MPNN(D), 1)
    h = torch.randn(g.num_nodes, D, dtype=torch.float64)
    hook_point = layer.get_submodule(point)
    shapes: list[tuple[int, ...]] = []

    def edit(t: Tensor, hook: object) -> None:
        shapes.append(tuple(t.shape))
        t[::3] = 0.25  # in place: every third edge

    def run(chunk: int) -> Tensor:
        handle = hook_point.add_hook(edit)
        try:
            with edge_chunk_size(chunk):
                return layer(h, g.edge_index, g.edge_attr, x=g.x)
        finally:
            handle.remove()

    whole, chunked = run(0), run(4)
    assert shapes == [(g.num_edges, shapes[0][1])] * 2
    close(chunked, whole)
    with edge_chunk_size(0):
        unedited = layer(h, g.edge_index, g.edge_attr, x=g.x)
    assert not torch.allclose(chunked, unedited)  # the edit acted
    assert not hook_point.has_hooks  # nothing leaked


def test_model_forward_and_cache_are_the_same_with_chunks() -> None:
    torch.manual_seed(0)
    g = _edge_graph(12, 50).replace(x=torch.rand(12, 1), edge_attr=torch.rand(50, 1))
    model = HookedGNN("mpnn", 8, node_in=1, edge_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=3)
    with edge_chunk_size(0):
        want, cache_want = model.run_with_cache(g)
    with edge_chunk_size(7):
        got, cache = model.run_with_cache(g)
        out = model(g)
    torch.testing.assert_close(out["d"], want["d"], rtol=1e-5, atol=1e-5 * max(1.0, want["d"].abs().max().item()))
    assert set(cache.keys()) == set(cache_want.keys())
    for name in cache_want.keys():
        ref = cache_want[name]
        torch.testing.assert_close(cache[name], ref, rtol=1e-5, atol=1e-5 * max(1.0, ref.abs().max().item()))


def test_env_var_sets_the_chunk_size_and_bad_values_name_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, "123")
    assert current_edge_chunk_size() == 123
    with edge_chunk_size(5):
        assert current_edge_chunk_size() == 5
    assert current_edge_chunk_size() == 123
    for bad in ("lots", "-3", "1.5"):
        monkeypatch.setenv(ENV_VAR, bad)
        with pytest.raises(ValueError, match=ENV_VAR):
            current_edge_chunk_size()
    monkeypatch.delenv(ENV_VAR)
    default = current_edge_chunk_size()
    assert default >= 10**6  # graphs of up to a million edges run unchunked


def test_context_manager_rejects_bad_sizes_and_restores_after_an_error() -> None:
    before = current_edge_chunk_size()
    for bad in (-1, True):  # (a float or str is caught by the annotation checks first)
        with pytest.raises(ValueError, match="edge_chunk_size"):
            with edge_chunk_size(bad):  # type: ignore[arg-type]
                pass
    with pytest.raises(RuntimeError, match="boom"):
        with edge_chunk_size(3):
            raise RuntimeError("boom")
    assert current_edge_chunk_size() == before


@pytest.mark.parametrize("hidden_hook", [False, True])
def test_the_mlp_runs_in_chunks_only_where_no_hook_needs_the_whole_hidden_layer(hidden_hook: bool) -> None:
    g = _edge_graph(e=23)
    layer = seeded(MPNN(D), 2)
    h = torch.randn(g.num_nodes, D, dtype=torch.float64)
    rows: list[int] = []  # rows per call of the output layer, seen by a plain torch hook
    torch_handle = layer.message_mlp.lin_out.register_forward_hook(lambda mod, inp, out: rows.append(inp[0].shape[0]))
    hook = layer.message_mlp.hook_post.add_hook(lambda t, hook: None) if hidden_hook else None
    try:
        with edge_chunk_size(5):
            layer(h, g.edge_index, g.edge_attr, x=g.x)
    finally:
        torch_handle.remove()
        if hook is not None:
            hook.remove()
    assert rows == ([23] if hidden_hook else [5, 5, 5, 5, 3])
