"""Row-local hooks (hookgnn.points.row_local): a message MLP keeps its edge chunks and calls them once per
chunk with the chunk's rows (``hook.span``); attribute(keep="rows") taps its hidden neurons chunk by chunk.

References: keep="all"'s differences and gradients reduced by hand in float64 (the whole-tensor path:
a cache is not row-local), the message MLP's first layer written out in plain torch, and the unchunked
layer (edge_chunk_size(0)).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from handbuilt import no_hooks_left
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import graphs
from torch import Tensor

from hookgnn import Graph, HookedGNN, HookPoint
from hookgnn.attribution import attribute
from hookgnn.hooks import HookError
from hookgnn.metrics import OutputSum
from hookgnn.nn import MPNN, edge_chunk_size
from hookgnn.points import RowSpan, row_local
from hookgnn.spec import FeatureSpec

SPEC = {"d": FeatureSpec("output", "node", "scalar")}
CHUNK = 3


def _model(seed: int, d: int = 4, rounds: int = 3) -> HookedGNN:
    torch.manual_seed(seed)
    return HookedGNN("mpnn", d_hidden=d, node_in=2, edge_in=1, spec=SPEC, max_steps=rounds)


def _rows_seen(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The first-axis length of every tensor a hook is run on at a message MLP's hidden hook points."""
    seen: list[int] = []
    run = HookPoint._run

    def spy(self: HookPoint, fn: Any, x: Tensor, what: str) -> Tensor:
        if "message_mlp" in self.name:
            seen.append(x.shape[0])
        return run(self, fn, x, what)

    monkeypatch.setattr(HookPoint, "_run", spy)
    return seen


def _check_against_keep_all(full: Any, got: Any) -> None:
    for hook in full.axes:
        p = full.delta[hook].double() * full.grad[hook].double()
        scale = 1.0 + float((full.delta[hook].double().abs() * full.grad[hook].double().abs()).sum())
        want_rows = p.reshape(p.shape[0], math.prod(p.shape[1:])).sum(1)
        torch.testing.assert_close(got.by_row[hook].double(), want_rows, rtol=1e-5, atol=1e-5 * scale)
        torch.testing.assert_close(got.by_feature[hook].double(), p.sum(0), rtol=1e-5, atol=1e-5 * scale)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(g=graphs(max_nodes=7, max_edges=16, node_features=2, edge_features=1), ig_steps=st.sampled_from([0, 2]),
       offload=st.booleans(), seed=st.integers(0, 3))
def test_rows_in_tiny_edge_chunks_equal_keep_all_by_hand(
    g: Graph, ig_steps: int, offload: bool, seed: int, tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _model(seed, rounds=2)
    torch.manual_seed(seed + 10)
    corr = g.replace(x=torch.randn(g.x.shape), edge_attr=torch.rand(g.edge_attr.shape))
    full = attribute(model, g, corr, OutputSum("d"), ig_steps=ig_steps, chunk=1)
    spill = tmp_path_factory.mktemp("spill") if offload else None
    with monkeypatch.context() as m:
        seen = _rows_seen(m)
        with edge_chunk_size(CHUNK):
            got = attribute(model, g, corr, OutputSum("d"), ig_steps=ig_steps, chunk=1, keep="rows", offload=spill)
    assert any("message_mlp.hook_pre" in h for h in got.by_row)
    # the hidden layer went through its hooks chunk by chunk; in memory the source run's cache holds it whole
    assert sum(r > CHUNK for r in seen) == (0 if offload else 4 * (g.num_edges > CHUNK))
    _check_against_keep_all(full, got)
    assert spill is None or not any(spill.iterdir())
    assert no_hooks_left(model) and all(p.span is None for p in model.hook_points())


@pytest.mark.parametrize("offload", [False, True])
def test_hidden_taps_never_see_more_than_a_chunk(offload: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The regression: on a graph above the chunk size the hidden hook points' taps and differences used to get
    the whole [E, d_mlp] hidden layer (so an offloaded attribution held several of them per round)."""
    model = _model(1, d=8)
    torch.manual_seed(2)
    n, e = 12, 40
    g = Graph(x=torch.rand(n, 2), edge_index=torch.randint(0, n, (2, e)), edge_attr=torch.rand(e, 1))
    corr = g.replace(x=torch.rand(n, 2))
    full = attribute(model, g, corr, OutputSum("d"))
    seen = _rows_seen(monkeypatch)
    with edge_chunk_size(CHUNK):
        got = attribute(model, g, corr, OutputSum("d"), keep="rows", offload=tmp_path if offload else None)
    whole = [r for r in seen if r > CHUNK]
    assert whole == ([] if offload else [e] * 6)  # in memory, the source run's cache (not row-local) is whole
    assert len(seen) - len(whole) >= 2 * 3 * math.ceil(e / CHUNK)  # hook_pre and hook_post, 3 rounds, every chunk
    _check_against_keep_all(full, got)


def _layer_and_graph() -> tuple[MPNN, Tensor, Tensor]:
    torch.manual_seed(3)
    return MPNN(4), torch.randn(6, 4), torch.randint(0, 6, (2, 10))


def test_a_row_local_hook_sees_every_row_once_with_its_span() -> None:
    layer, h, ei = _layer_and_graph()
    mlp = layer.message_mlp
    src, dst = ei
    z = torch.cat([h[src], h[src], h[dst], h[dst], torch.ones(10, 4)], -1)  # [x_u, h_u, x_v, h_v, e] with x = h
    calls: list[tuple[RowSpan | None, Tensor]] = []
    grads: list[tuple[RowSpan | None, Tensor]] = []
    whole_grad: list[Tensor] = []
    hw = h.clone().requires_grad_()
    with edge_chunk_size(0), mlp.hook_post.add_hook(lambda g, hook: whole_grad.append(g.clone()), dir="bwd"):
        whole = layer(hw, ei, x=hw, edge_attr=torch.ones(10, 4))
        whole.sum().backward()
    with edge_chunk_size(4), mlp.hook_pre.add_hook(row_local(lambda a, hook: calls.append((hook.span, a.clone())))), \
            mlp.hook_post.add_hook(row_local(lambda g, hook: grads.append((hook.span, g.clone()))), dir="bwd"):
        hc = h.clone().requires_grad_()
        out = layer(hc, ei, x=hc, edge_attr=torch.ones(10, 4))
        out.sum().backward()
    assert [s for s, _ in calls] == [RowSpan(0, 4, 10), RowSpan(4, 8, 10), RowSpan(8, 10, 10)]
    pre = z @ mlp.lin_in.weight.T + mlp.lin_in.bias  # plain torch
    for span, act in calls:
        assert span is not None
        torch.testing.assert_close(act, pre[span.start:span.stop], rtol=1e-5, atol=1e-5 * (1 + pre.abs().max().item()))
    assert sorted((s.start, s.stop) for s, _ in grads if s is not None) == [(0, 4), (4, 8), (8, 10)]
    by_rows = torch.cat([g for _, g in sorted(grads, key=lambda sg: sg[0].start if sg[0] is not None else -1)])
    torch.testing.assert_close(by_rows, whole_grad[0], rtol=1e-5, atol=1e-6 * (1 + whole_grad[0].abs().max().item()))
    torch.testing.assert_close(out, whole, rtol=1e-5, atol=1e-6 * (1 + out.abs().max().item()))
    assert mlp.hook_pre.span is None and mlp.hook_post.span is None


def test_a_hook_that_is_not_row_local_turns_the_chunked_hooks_off_for_that_layer() -> None:
    layer, h, ei = _layer_and_graph()
    mlp = layer.message_mlp
    spans: list[tuple[RowSpan | None, int]] = []
    seen_whole: list[int] = []
    with edge_chunk_size(0):
        reference = layer(h, ei, x=h)
    with edge_chunk_size(4), mlp.hook_pre.add_hook(row_local(lambda a, hook: spans.append((hook.span, a.shape[0])))), \
            mlp.hook_post.add_hook(lambda a, hook: seen_whole.append(a.shape[0])):
        out = layer(h, ei, x=h)
    assert spans == [(None, 10)] and seen_whole == [10]  # both get the whole hidden layer, as without the marker
    torch.testing.assert_close(out, reference, rtol=1e-5, atol=1e-6 * (1 + reference.abs().max().item()))


def test_hooks_never_leak_when_a_chunk_hook_raises() -> None:
    model = _model(0)
    g = Graph(x=torch.rand(5, 2), edge_index=torch.randint(0, 5, (2, 9)), edge_attr=torch.rand(9, 1))

    @row_local
    def boom(act: Tensor, hook: Any) -> None:
        if hook.span is not None and hook.span.start > 0:
            raise RuntimeError("second chunk")

    name = "layers.1.message_mlp.hook_post"
    with edge_chunk_size(4), pytest.raises(RuntimeError, match="second chunk"):
        model.run_with_hooks(g, fwd_hooks=[(name, boom)], bwd_hooks=[(name, row_local(lambda g, hook: None))])
    assert no_hooks_left(model) and all(p.span is None for p in model.hook_points())
    with edge_chunk_size(4), pytest.raises(RuntimeError, match="second chunk"):
        with model.hooks(fwd_hooks=[(name, boom)]):
            model(g)
    assert no_hooks_left(model) and all(p.span is None for p in model.hook_points())


def test_a_hook_point_called_on_rows_names_what_is_wrong() -> None:
    hp = HookPoint(axis="edge")
    hp.name = "layers.0.message_mlp.hook_pre"

    def cache(act: Tensor, hook: Any) -> None:
        return None

    with hp.add_hook(cache), pytest.raises(HookError, match=r"hook_pre was called on rows 0:2 of 5, but its hook "
                                                               r"cache is not marked row_local"):
        hp(torch.ones(2, 3), span=RowSpan(0, 2, 5))
    with hp.add_hook(row_local(lambda a, hook: None)), pytest.raises(HookError, match=r"rows 0:3 of 5 with a tensor "
                                                                                       r"of shape \(2, 3\)"):
        hp(torch.ones(2, 3), span=RowSpan(0, 3, 5))
    assert hp.span is None


def _grad_fns(t: Tensor) -> set[str]:
    seen, todo = set(), [t.grad_fn]
    while todo:
        fn = todo.pop()
        if fn is not None and type(fn).__name__ not in seen:
            seen.add(type(fn).__name__)
            todo.extend(f for f, _ in fn.next_functions)
    return seen


def test_chunks_of_per_row_tensors_share_one_split_and_give_the_plain_gradient() -> None:
    """A chunk of an edge block is a piece of one split, not a slice (whose backward zero-fills a whole
    [E, d] gradient per chunk, which the backward of a message MLP in chunks held beside its chunks)."""
    from hookgnn.nn.projection import Block, LinearPlan

    torch.manual_seed(4)
    lin = torch.nn.Linear(3, 2)
    e = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    lin = lin.double()
    plan = LinearPlan.of(lin, [Block(e, None, 3)], 7, 3)
    chunks = [plan.rows(s, min(s + 3, 7)) for s in range(0, 7, 3)]
    assert "SplitBackward0" in _grad_fns(chunks[1]) and not any("Slice" in f for f in _grad_fns(chunks[1]))
    g = torch.randn(7, 2, dtype=torch.float64)
    (torch.cat(chunks) * g).sum().backward()
    with torch.no_grad():  # plain torch: y = e W^T + b, so dy/de = g W
        torch.testing.assert_close(torch.cat(chunks), e @ lin.weight.T + lin.bias, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(e.grad, g @ lin.weight, rtol=1e-12, atol=1e-12)
        off_grid = plan.rows(1, 4)  # rows off the chunk grid: a slice, as before
        torch.testing.assert_close(off_grid, (e @ lin.weight.T + lin.bias)[1:4], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("hook", ["row_local", "whole", "none_in_rounds"])
def test_chunks_written_into_one_tensor_give_the_unchunked_gradients(hook: str) -> None:
    """Chunks written one by one into the message tensor (no concatenation), with a row-local hook, a whole-tensor
    hook, or no hook inside checkpointed rounds: gradients as without chunks (float64)."""
    from hookgnn.nn.chunking import rounds_checkpointed

    torch.manual_seed(5)
    layer = MPNN(4).double()
    h, ei, e_attr = torch.randn(6, 4, dtype=torch.float64), torch.randint(0, 6, (2, 11)), torch.randn(11, 4).double()
    w = torch.randn(6, 4, dtype=torch.float64)

    def grads(size: int) -> list[Tensor]:
        hh, ee = h.clone().requires_grad_(), e_attr.clone().requires_grad_()
        fn = (lambda a, hook: a * 1.5) if hook != "none_in_rounds" else None
        fn = row_local(fn) if hook == "row_local" else fn
        with edge_chunk_size(size), rounds_checkpointed():
            if fn is None:
                out = layer(hh, ei, ee, x=hh)
            else:
                with layer.message_mlp.hook_pre.add_hook(fn):
                    out = layer(hh, ei, ee, x=hh)
        (out * w).sum().backward()
        return [hh.grad, ee.grad, out.detach()]

    for got, want in zip(grads(4), grads(0)):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10 * (1 + want.abs().max().item()))
