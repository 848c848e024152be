"""Hook points scored through the links (``hook_src``) against the tapped gradient and by hand.

References: ``keep="all"`` (which taps every hook point, ``hook_src`` included, and returns its
difference and its autograd gradient), the same sums made by hand in float64 from the full
product :math:`\\Delta A_{\\rho(e)} \\odot (W^\\top g_e)`, and plain-torch gathers for the kernel.
"""

from __future__ import annotations

import tempfile

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hookgnn import Graph, HookedGNN
from hookgnn.attribution import attribute
from hookgnn.attribution.contracted import Contraction, contracted_sums, contractions
from hookgnn.metrics import OutputSum
from hookgnn.ops.backend import use_backend
from hookgnn.ops.products import gathered_row_sums, product_sums
from hookgnn.spec import FeatureSpec
from model_zoo import KINDS, case

#: Kinds whose links score ``hook_src`` through the message's first layer (the rest keep the tap).
CONTRACTED_KINDS = {"hooked-mpnn", "hooked-minagg", "layers-minar", "task-dag_shortest_paths", "pyg-minar"}


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    scale = float(want.abs().max()) if want.numel() else 1.0
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5 * max(scale, 1e-3))


def _same_sums(got, want, names) -> None:
    """``got``'s row and feature sums against ``want``'s (``keep="all"``) difference times gradient, by hand."""
    for name in names:
        product = (want.delta[name] * want.grad[name]).double()
        _close(got.by_row[name].double(), product.reshape(product.shape[0], -1).sum(1) if product.dim() else product)
        _close(got.by_feature[name].double(), product.sum(0) if product.dim() else product)


@pytest.mark.parametrize("kind", [k for k in KINDS if k not in {"hooked-gcn", "hooked-sage", "hooked-gin"}])
def test_rows_equal_the_tapped_gradients_for_every_kind(kind: str) -> None:
    c = case(kind)
    names = [hp.name for hp in c.model.hook_points()]
    found = contractions(c.model, names, c.clean, c.corrupted)
    # the kinds listed are contracted (the test exercises the links), the others are not
    assert bool(found) == (kind in CONTRACTED_KINDS), sorted(found)
    want = attribute(c.model, c.clean, c.corrupted, c.metric, keep="all")
    got = attribute(c.model, c.clean, c.corrupted, c.metric, keep="rows")
    assert list(got.by_row) == list(want.delta)
    _same_sums(got, want, names)


def _mpnn(seed: int = 0, d: int = 8, steps: int = 2) -> HookedGNN:
    torch.manual_seed(seed)
    return HookedGNN("mpnn", d, node_in=1, edge_in=1, spec={"d": FeatureSpec("output", "node", "scalar")},
                     max_steps=steps).double()


@st.composite
def graphs(draw: st.DrawFn) -> tuple[Graph, Graph]:
    """A graph with isolated nodes, self-loops and multi-edges allowed (and no edges at all), and a
    corrupted copy with the same edges."""
    n = draw(st.integers(1, 7))
    e = draw(st.integers(0, 14))
    pairs = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), min_size=e, max_size=e))
    seed = draw(st.integers(0, 2**16))
    gen = torch.Generator().manual_seed(seed)
    ei = torch.tensor(pairs, dtype=torch.long).reshape(e, 2).T
    g = Graph(x=torch.rand(n, 1, generator=gen, dtype=torch.float64), edge_index=ei,
              edge_attr=torch.rand(e, 1, generator=gen, dtype=torch.float64))
    return g, g.replace(x=torch.rand(n, 1, generator=gen, dtype=torch.float64))


@settings(max_examples=8, deadline=None)
@given(pair=graphs(), ig=st.sampled_from([0, 2]))
def test_rows_and_features_match_the_full_product_by_hand(pair: tuple[Graph, Graph], ig: int) -> None:
    g, corrupted = pair
    model, metric = _mpnn(), OutputSum("d")
    want = attribute(model, g, corrupted, metric, keep="all", ig_steps=ig)
    for keep in ("rows", "features"):
        got = attribute(model, g, corrupted, metric, keep=keep, ig_steps=ig)
        for t in range(2):
            name = f"layers.{t}.hook_src"
            # by hand: the full [E, d] product of hook_src's difference and its autograd gradient
            product = want.delta[name] * want.grad[name]
            torch.testing.assert_close(got.by_feature[name], product.sum(0), rtol=1e-9, atol=1e-12)
            if keep == "rows":
                torch.testing.assert_close(got.by_row[name], product.sum(1), rtol=1e-9, atol=1e-12)


def test_offloaded_and_checkpointed_rows_match_in_memory() -> None:
    torch.manual_seed(3)
    n, e = 12, 40
    g = Graph(x=torch.rand(n, 1), edge_index=torch.randint(0, n, (2, e)), edge_attr=torch.rand(e, 1))
    corrupted = g.replace(x=torch.rand(n, 1))
    model = HookedGNN("mpnn", 8, node_in=1, edge_in=1, spec={"d": FeatureSpec("output", "node", "scalar")},
                      max_steps=3)
    want = attribute(model, g, corrupted, OutputSum("d"), keep="all")
    with tempfile.TemporaryDirectory() as spill:
        got = attribute(model, g, corrupted, OutputSum("d"), keep="rows", offload=spill)
    _same_sums(got, want, [f"layers.{t}.hook_src" for t in range(3)])


def test_a_source_graph_with_other_edges_is_not_contracted() -> None:
    model = _mpnn(1)
    g = Graph(x=torch.rand(5, 1, dtype=torch.float64), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]),
              edge_attr=torch.rand(3, 1, dtype=torch.float64))
    rewired = g.replace(edge_index=torch.tensor([[4, 1, 0], [1, 2, 3]]))
    names = [hp.name for hp in model.hook_points()]
    assert contractions(model, names, g, rewired) == {}
    assert sorted(contractions(model, names, g, g)) == ["layers.0.hook_src", "layers.1.hook_src"]


def test_only_with_both_neighbours_attributed() -> None:
    model = _mpnn(2)
    g = Graph(x=torch.rand(4, 1, dtype=torch.float64), edge_index=torch.tensor([[0, 1, 3], [1, 2, 2]]),
              edge_attr=torch.rand(3, 1, dtype=torch.float64))
    assert contractions(model, ["layers.1.hook_src", "layers.1.message_mlp.hook_pre"], g, g) == {}
    assert list(contractions(model, ["layers.0.hook_update", "layers.1.hook_src", "layers.1.message_mlp.hook_pre"],
                             g, g)) == ["layers.1.hook_src"]
    corrupted = g.replace(x=torch.rand(4, 1, dtype=torch.float64))
    want = attribute(model, g, corrupted, OutputSum("d"), keep="all", names_filter="layers.1.hook_src")
    got = attribute(model, g, corrupted, OutputSum("d"), keep="rows", names_filter="layers.1.hook_src")
    _same_sums(got, want, ["layers.1.hook_src"])


def test_contracted_sums_by_hand_and_misfits_named() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    da = torch.randn(4, 3, generator=gen, dtype=torch.float64)
    g = torch.randn(6, 5, generator=gen, dtype=torch.float64)
    ei = torch.tensor([[0, 3, 3, 1, 0, 2], [1, 1, 2, 0, 0, 3]])
    for rows, index in (("src", ei[0]), ("dst", ei[1])):
        c = Contraction("h", "a", "p", rows, w)
        got = contracted_sums(c, da, g, ei, ["by_row", "by_feature"])
        product = da[index] * (g @ w)
        torch.testing.assert_close(got["by_row"], product.sum(1))
        torch.testing.assert_close(got["by_feature"], product.sum(0))
    with pytest.raises(ValueError, match="cannot score h through a and p: p's gradient is \\(6, 4\\)"):
        contracted_sums(Contraction("h", "a", "p", "src", w), da, g[:, :4], ei, ["by_row"])


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 6), rows=st.integers(0, 2100), d=st.integers(1, 19), double=st.booleans(),
       seed=st.integers(0, 2**16))
def test_gathered_row_sums_against_a_plain_gather(n: int, rows: int, d: int, double: bool, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    dtype = torch.float64 if double else torch.float32
    q = torch.randn(n, d, generator=gen, dtype=dtype)
    index = torch.randint(0, n, (rows,), generator=gen)
    b = torch.randn(rows, d, generator=gen, dtype=dtype)
    want = (q.double()[index] * b.double()).sum(1)
    got = gathered_row_sums(q, index, b)
    assert got.dtype == dtype and got.shape == (rows,)
    torch.testing.assert_close(got.double(), want, rtol=1e-5 if not double else 1e-12, atol=1e-5 if not double else 1e-12)
    # the same bits as product_sums of the gathered rows (one order of summation for both)
    assert torch.equal(got, product_sums(q[index], b)[0])
    with use_backend("torch"):
        torch.testing.assert_close(gathered_row_sums(q, index, b).double(), want, rtol=1e-5, atol=1e-5)


def test_gathered_row_sums_names_bad_input() -> None:
    q, b = torch.randn(3, 2), torch.randn(4, 2)
    with pytest.raises(ValueError, match=r"index\[2\] = 3 is out of range for q's 3 rows"):
        gathered_row_sums(q, torch.tensor([0, 1, 3, 2]), b)
    with pytest.raises(ValueError, match="index\\[0\\] = -1"):
        gathered_row_sums(q, torch.tensor([-1, 1, 0, 2]), b)
    with pytest.raises(ValueError, match="index must be int64, got torch.int32"):
        gathered_row_sums(q, torch.tensor([0, 1, 2, 0], dtype=torch.int32), b)


def test_a_contraction_whose_rows_do_not_fit_is_tapped_after_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the source run shows ``P``'s rows are not the graph's edges, the hook point is cached and
    tapped as any other (forced here): the same sums, in the same order."""
    import hookgnn.attribution.streamed as streamed

    model = _mpnn(4)
    g = Graph(x=torch.rand(6, 1, dtype=torch.float64), edge_index=torch.tensor([[0, 1, 3, 5, 5], [1, 2, 2, 0, 5]]),
              edge_attr=torch.rand(5, 1, dtype=torch.float64))
    corrupted = g.replace(x=torch.rand(6, 1, dtype=torch.float64))
    contracted = attribute(model, g, corrupted, OutputSum("d"), keep="rows")
    monkeypatch.setattr(streamed, "_fits", lambda c, source, base: False)
    tapped = attribute(model, g, corrupted, OutputSum("d"), keep="rows")
    want = attribute(model, g, corrupted, OutputSum("d"), keep="all")
    assert list(tapped.by_row) == list(contracted.by_row)
    _same_sums(tapped, want, list(want.delta))
    with tempfile.TemporaryDirectory() as spill:
        offloaded = attribute(model, g, corrupted, OutputSum("d"), keep="rows", offload=spill)
    _same_sums(offloaded, want, list(want.delta))
