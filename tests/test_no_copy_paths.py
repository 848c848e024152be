"""The paths that save copies on huge graphs give the numbers of the paths they replace.

* ``run_with_cache`` stores the activation the forward goes on with (no copy per hook), but
  never shares an input, parameter or buffer that reaches a hook unchanged;
* a ``hook_src`` whose hooks changed nothing (a cache, a gradient tap) skips the zero product
  :math:`W (h_{src} - h[src])` and still hands ``hook_src`` its gradient :math:`g W`
  (:class:`~hookgnn.nn.projection.LinearPlan`): checked against the concatenated linear layer
  in float64 by plain autograd, on whole outputs and on chunks of rows;
* ``attribute(keep="rows")`` of a graph without edges (it raised on the empty per-edge products);
* ``attribute(keep="rows")``, which runs through both, against the difference times the gradient
  taken by hand: two plain forwards and ``torch.autograd.grad`` with a fresh leaf put in at
  ``hook_src``, in float64, on random graphs (isolated nodes, self-loops, parallel edges, no edges).
"""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import graphs
from torch import Tensor, nn

from hookgnn import HookedGNN
from hookgnn.attribution import attribute
from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.metrics import OutputSum
from hookgnn.nn.projection import Block, LinearPlan, SourceRows, concat_linear, gather_rows, source_block
from hookgnn.points import HookPoint, read_only
from hookgnn.spec import FeatureSpec

SPEC = {"d": FeatureSpec("output", "node", "scalar")}


class _PassInput(HookedRootModule):
    """A hook point that sees the input tensor itself, then one that sees a product."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.hook_in = HookPoint("node")
        self.hook_weight = HookPoint("node")
        self.hook_out = HookPoint("node")
        self.setup()

    def forward(self, x: Tensor) -> Tensor:
        self.hook_weight(self.lin.weight)
        return self.hook_out(self.lin(self.hook_in(x)))


def test_run_with_cache_never_shares_an_input_or_parameter_it_caches() -> None:
    torch.manual_seed(0)
    model, x = _PassInput(), torch.randn(3, 2)
    kept, weight = x.clone(), model.lin.weight.detach().clone()
    out, cache = model.run_with_cache(x)
    cache["hook_in"].add_(1.0)
    cache["hook_weight"].add_(1.0)
    assert torch.equal(x, kept) and torch.equal(model.lin.weight.detach(), weight)
    torch.testing.assert_close(cache["hook_out"], out.detach())
    torch.testing.assert_close(out, x @ weight.t() + model.lin.bias.detach())


def test_run_with_cache_keeps_the_activation_itself_not_a_copy() -> None:
    torch.manual_seed(0)
    model, x = _PassInput(), torch.randn(3, 2)
    seen: list[Tensor] = []
    handle = model.hook_out.add_hook(read_only(lambda act, hook: seen.append(act)))  # runs before the cache's
    try:
        out, cache = model.run_with_cache(x)
    finally:
        handle.remove()
    assert cache["hook_out"].data_ptr() == seen[0].data_ptr() == out.data_ptr()
    torch.testing.assert_close(out, x @ model.lin.weight.detach().t() + model.lin.bias.detach())


def test_kept_rows_of_a_graph_without_edges_are_empty() -> None:
    torch.manual_seed(0)
    model = HookedGNN("mpnn", 4, node_in=2, edge_in=1, spec=SPEC, max_steps=2)
    g = Graph(x=torch.randn(3, 2), edge_index=torch.zeros(2, 0, dtype=torch.long), edge_attr=torch.zeros(0, 1))
    corrupted = g.replace(x=torch.randn(3, 2))
    full = attribute(model, g, corrupted, OutputSum("d"))
    got = attribute(model, g, corrupted, OutputSum("d"), keep="rows")
    for name in full.axes:
        want = full.row_sums(name)
        scale = 1.0 + float(want.abs().max()) if want.numel() else 1.0
        torch.testing.assert_close(got.by_row[name], want, rtol=1e-5, atol=1e-6 * scale)
    assert got.by_row["layers.0.hook_message"].shape == (0,)


def _source_linear(h: Tensor, src: Tensor, dst: Tensor, lin: nn.Linear, unchanged: bool, split: int | None) -> Tensor:
    """``lin([h_src, h_dst])`` through a ``hook_src`` left unchanged (the same memory) or replaced
    by a copy, whole or in two chunks of rows."""
    rows = gather_rows(h, src)
    value = rows.view_as(rows) if unchanged else rows.clone()
    d, e = h.shape[1], src.shape[0]
    blocks = [source_block(h, SourceRows(rows, value), src), Block(h, dst, d)]
    if split is None:
        return concat_linear(lin, blocks, e)
    plan = LinearPlan.of(lin, blocks, e)
    return torch.cat([plan.rows(0, split), plan.rows(split, e)])


@settings(max_examples=25)
@given(g=graphs(min_nodes=1, max_nodes=6, max_edges=12, edge_features=None, dtype=torch.float64),
       cut=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_unchanged_source_rows_give_the_values_and_gradients_of_the_concatenation(g: Graph, cut: float,
                                                                                   seed: int) -> None:
    torch.manual_seed(seed)
    src, dst = g.edge_index
    lin = nn.Linear(2 * g.x.shape[1], 3).double()
    split = int(cut * src.shape[0])
    h = g.x.clone().requires_grad_()
    w = torch.randn(src.shape[0], 3, dtype=torch.float64)
    ref = lin(torch.cat([h[src], h[dst]], -1))
    ref_h, ref_w = torch.autograd.grad((ref * w).sum(), [h, lin.weight], allow_unused=True, materialize_grads=True)
    for chunks in (None, split):
        got = _source_linear(h, src, dst, lin, True, chunks)
        copied = _source_linear(h, src, dst, lin, False, chunks)
        assert torch.equal(got, copied)  # the skipped term was exactly zero
        scale = 1.0 + float(ref.detach().abs().max()) if ref.numel() else 1.0
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12 * scale)
        got_h, got_w = torch.autograd.grad((got * w).sum(), [h, lin.weight], allow_unused=True,
                                           materialize_grads=True)
        for a, b in ((got_h, ref_h), (got_w, ref_w)):
            big = 1.0 + float(b.abs().max()) if b.numel() else 1.0
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12 * big)


def _by_hand(model: HookedGNN, clean: Graph, corrupted: Graph, name: str) -> Tensor:
    """Per-edge ``sum_f (a^clean - a^corrupted) * d metric / d a`` at ``name``, the gradient at the
    corrupted run through a fresh leaf put in at the hook (plain autograd, a copy per forward)."""
    seen: dict[str, Tensor] = {}

    def grab(act: Tensor, hook: object) -> None:
        seen["act"] = act.detach().clone()

    with torch.no_grad():
        model.run_with_hooks(clean, fwd_hooks=[(name, grab)])
    clean_act = seen["act"]
    leaf: dict[str, Tensor] = {}

    def swap(act: Tensor, hook: object) -> Tensor:
        leaf["t"] = act.detach().clone().requires_grad_()
        return leaf["t"]

    out = model.run_with_hooks(corrupted, fwd_hooks=[(name, swap)])
    (grad,) = torch.autograd.grad(OutputSum("d")(out, corrupted).sum(), [leaf["t"]], allow_unused=True,
                                  materialize_grads=True)
    return ((clean_act - leaf["t"].detach()) * grad).sum(1)


@settings(max_examples=6)
@given(g=graphs(min_nodes=1, max_nodes=6, max_edges=12, node_features=2, edge_features=1, dtype=torch.float64),
       seed=st.integers(0, 2**16))
def test_kept_source_rows_equal_the_product_taken_by_hand(g: Graph, seed: int) -> None:
    torch.manual_seed(seed)
    model = HookedGNN("mpnn", 4, node_in=2, edge_in=1, spec=SPEC, max_steps=2, tie_weights=False).double()
    corrupted = g.replace(x=torch.randn_like(g.x))
    names = ["layers.0.hook_src", "layers.1.hook_src"]
    got = attribute(model, g, corrupted, OutputSum("d"), keep="rows", names_filter=names)
    for name in names:
        want = _by_hand(model, g, corrupted, name)
        scale = 1.0 + float(want.abs().max()) if want.numel() else 1.0
        torch.testing.assert_close(got.by_row[name], want, rtol=1e-10, atol=1e-10 * scale)
