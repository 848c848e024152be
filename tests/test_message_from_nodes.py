"""Messages computed from node tensors (projection before the gather) against today's path.

Three ways to run a processor: ``fast`` (no hook on ``hook_src``: ``message_from_nodes``
projects node blocks before gathering them), ``hooked`` (a hook on ``hook_src`` that
only reads it: the hook point's rows are built and read through) and ``concat`` (a
subclass that overrides ``message`` alone, so ``forward`` calls ``message`` on the
gathered and concatenated rows, the path of earlier releases, itself tested against
naive loops in test_processors.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import graphs
from torch import Tensor, nn

from hookgnn import Graph, HookedGNN
from hookgnn.nn import GAT, GINE, MPNN, PGN, HookedMessagePassing, MinAgg, TripletGMPNN
from hookgnn.nn.projection import Block, SourceRows, concat_linear, source_block

D = 4
PROCESSORS: dict[str, Callable[[], HookedMessagePassing]] = {
    "mpnn": lambda: MPNN(D),
    "minagg": lambda: MinAgg(D),
    "pgn": lambda: PGN(D),
    "pgn_ungated": lambda: PGN(D, gated=False),
    "gine": lambda: GINE(D),
    "gine_without_inputs": lambda: GINE(D, use_inputs=False),
    "triplet_gmpnn": lambda: TripletGMPNN(D, d_tri=3),
    "gat": lambda: GAT(D, heads=2),
    "gat_three_heads_mean": lambda: GAT(D, heads=3),
    "gat_without_inputs": lambda: GAT(D, heads=2, use_inputs=False, residual=False),
}
graphs64 = graphs(node_features=D, edge_features=D, dtype=torch.float64, max_edges=14)


def randomised(layer: nn.Module, seed: int) -> nn.Module:
    gen = torch.Generator().manual_seed(seed)
    layer = layer.double()
    with torch.no_grad():
        for p in list(layer.parameters()) + list(layer.buffers()):
            p.copy_(0.5 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return layer


def concat_twin(layer: HookedMessagePassing) -> HookedMessagePassing:
    """A copy of ``layer`` whose class overrides ``message`` only, so forward calls ``message``."""
    cls = type(layer)
    twin = copy.deepcopy(layer)
    twin.__class__ = type(f"Concat{cls.__name__}", (cls,), {"message": cls.message})
    assert not twin._from_nodes
    return twin


def run(layer: nn.Module, g: Graph, h: Tensor, hook: Callable | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """Output and gradients (inputs and parameters) of ``sum(out^2) + sum(out)``."""
    h, x, e = (t.detach().clone().requires_grad_() for t in (h, g.x, g.edge_attr))  # type: ignore[union-attr]
    handle = None if hook is None else layer.hook_src.add_hook(hook)
    try:
        out = layer(h, g.edge_index, e, x=x)
    finally:
        if handle is not None:
            handle.remove()
    layer.zero_grad(set_to_none=True)
    (out.square().sum() + out.sum()).backward()
    grads = {"h": h.grad, "x": x.grad, "e": e.grad, **{n: p.grad for n, p in layer.named_parameters()}}
    return out.detach(), {k: torch.zeros(0) if v is None else v for k, v in grads.items()}


def reading(t: Tensor, hook: object) -> None:
    return None


@pytest.mark.parametrize("name", sorted(PROCESSORS))
@settings(max_examples=12, deadline=None)
@given(g=graphs64, seed=st.integers(0, 2**16))
def test_fast_hooked_and_concat_paths_give_equal_outputs_and_gradients(name: str, g: Graph, seed: int) -> None:
    layer = randomised(PROCESSORS[name](), seed)
    h = torch.randn(g.num_nodes, D, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    fast, fast_grads = run(layer, g, h)
    hooked, hooked_grads = run(layer, g, h, hook=reading)
    concat, concat_grads = run(concat_twin(layer), g, h)
    assert torch.equal(fast, hooked)  # a hook that only reads changes no bit
    torch.testing.assert_close(fast, concat)
    for key, want in concat_grads.items():
        torch.testing.assert_close(fast_grads[key], want, msg=lambda m, key=key: f"fast {key}: {m}")
        torch.testing.assert_close(hooked_grads[key], want, msg=lambda m, key=key: f"hooked {key}: {m}")


@pytest.mark.parametrize("name", sorted(PROCESSORS))
@settings(max_examples=10, deadline=None)
@given(g=graphs(min_nodes=1, node_features=D, edge_features=D, dtype=torch.float64, max_edges=14),
       seed=st.integers(0, 2**16), data=st.data())
def test_patching_hook_src_rows_matches_the_concat_path(name: str, g: Graph, seed: int, data: st.DataObject) -> None:
    if g.num_edges == 0:
        return
    layer = randomised(PROCESSORS[name](), seed)
    h = torch.randn(g.num_nodes, D, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    rows = data.draw(st.lists(st.integers(0, g.num_edges - 1), min_size=1, max_size=3, unique=True))
    shift = torch.randn(len(rows), D, generator=torch.Generator().manual_seed(seed + 2), dtype=torch.float64)

    def patch(t: Tensor, hook: object) -> Tensor:
        t = t.clone()
        t[rows] += shift
        return t

    got, got_grads = run(layer, g, h, hook=patch)
    want, want_grads = run(concat_twin(layer), g, h, hook=patch)
    torch.testing.assert_close(got, want)
    for key in want_grads:
        torch.testing.assert_close(got_grads[key], want_grads[key], msg=lambda m, key=key: f"{key}: {m}")


#: A patch of hook_src row e equals moving edge e's source to a new node holding the
#: patched state (and the same inputs): every processor whose message reads its source
#: only through the edge (not triplets, which also read the source's other out-edges).
REWIRABLE = sorted(set(PROCESSORS) - {"triplet_gmpnn"})


@pytest.mark.parametrize("name", REWIRABLE)
@settings(max_examples=10, deadline=None)
@given(g=graphs(min_nodes=1, node_features=D, edge_features=D, dtype=torch.float64, max_edges=14),
       seed=st.integers(0, 2**16), data=st.data())
def test_patching_a_hook_src_row_equals_rewiring_the_edge_to_a_new_node_with_the_patched_state(
        name: str, g: Graph, seed: int, data: st.DataObject) -> None:
    if g.num_edges == 0:
        return
    layer = randomised(PROCESSORS[name](), seed)
    h = torch.randn(g.num_nodes, D, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    edge = data.draw(st.integers(0, g.num_edges - 1))
    new_state = torch.randn(D, generator=torch.Generator().manual_seed(seed + 2), dtype=torch.float64)

    def patch(t: Tensor, hook: object) -> Tensor:
        t = t.clone()
        t[edge] = new_state
        return t

    with torch.no_grad(), layer.hook_src.add_hook(patch):
        got = layer(h, g.edge_index, g.edge_attr, x=g.x)
    u, n = int(g.edge_index[0, edge]), g.num_nodes
    edge_index = g.edge_index.clone()
    edge_index[0, edge] = n
    with torch.no_grad():
        want = layer(torch.cat([h, new_state[None]]), edge_index, g.edge_attr, x=torch.cat([g.x, g.x[u:u + 1]]))
    torch.testing.assert_close(got, want[:n])


@pytest.mark.parametrize("name", sorted(PROCESSORS))
def test_gradient_at_hook_src_matches_the_concat_path(name: str) -> None:
    """What attribution reads: the gradient with respect to the hook point's rows."""
    torch.manual_seed(3)
    layer = randomised(PROCESSORS[name](), 5)
    edge_index = torch.tensor([[0, 1, 0, 0, 2, 1, 2, 1], [1, 2, 2, 2, 2, 1, 0, 0]])
    h, x, e = (torch.randn(n, D, dtype=torch.float64) for n in (4, 4, 8))
    grads = []
    for module in (layer, concat_twin(layer)):
        seen: dict[str, Tensor] = {}

        def leaf(t: Tensor, hook: object, seen: dict[str, Tensor] = seen) -> Tensor:
            seen["rows"] = t.detach().clone().requires_grad_()
            return seen["rows"]

        with module.hook_src.add_hook(leaf):
            out = module(h, edge_index, e, x=x)
        grads.append(torch.autograd.grad(out.square().sum(), seen["rows"])[0])
    torch.testing.assert_close(grads[0], grads[1])
    assert grads[0].abs().sum() > 0


@pytest.mark.parametrize("processor", ["mpnn", "minagg", "pgn", "gine", "triplet_gmpnn"])
def test_caching_every_hook_or_patching_a_hook_with_its_own_value_changes_no_bit(processor: str) -> None:
    torch.manual_seed(0)
    model = HookedGNN(processor, d_hidden=D, node_in=2, edge_in=2, max_steps=3, tie_weights=False)
    g = Graph(x=torch.randn(5, 2), edge_index=torch.tensor([[0, 1, 1, 2, 3, 0, 2], [1, 2, 2, 0, 3, 0, 2]]),
              edge_attr=torch.randn(7, 2))
    plain = model(g).hidden
    out, cache = model.run_with_cache(g)
    assert torch.equal(out.hidden, plain)
    same = model.run_with_hooks(g, fwd_hooks=[("layers.1.hook_src", lambda t, hook: t.clone())])
    assert torch.equal(same.hidden, plain)
    _, with_grads = model.run_with_cache(g, grad_metric=lambda o: o.hidden.sum())
    assert torch.equal(with_grads["layers.2.hook_message"], cache["layers.2.hook_message"])


def test_a_subclass_that_overrides_message_alone_keeps_its_own_messages() -> None:
    class Doubled(MPNN):
        def message(self, h_src, h_dst, edge_attr, x_src, x_dst):  # noqa: ANN001, ANN201
            return 2 * super().message(h_src, h_dst, edge_attr, x_src, x_dst)

    torch.manual_seed(0)
    base = MPNN(D)
    doubled = Doubled(D)
    doubled.load_state_dict(base.state_dict())
    h, e = torch.randn(3, D), torch.randn(2, D)
    edge_index = torch.tensor([[0, 1], [1, 2]])
    msgs = []
    for layer in (base, doubled):
        with layer.hook_message.add_hook(lambda t, hook: msgs.append(t)):
            layer(h, edge_index, e, x=h)
    assert MPNN._from_nodes and not Doubled._from_nodes
    torch.testing.assert_close(msgs[1], 2 * msgs[0])


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 5), e=st.integers(0, 9), seed=st.integers(0, 2**16), shape=st.lists(
    st.tuples(st.sampled_from(["src", "dst", "edge", "zero", "delta"]), st.integers(1, 3)), min_size=1, max_size=5))
def test_concat_linear_equals_the_linear_layer_on_the_concatenation(n: int, e: int, seed: int, shape: list) -> None:
    if n == 0:
        e = 0
    gen = torch.Generator().manual_seed(seed)
    index = {end: torch.randint(0, max(n, 1), (e,), generator=gen) for end in ("src", "dst")}
    lin = nn.Linear(sum(w for _, w in shape), 3).double()
    blocks, columns, leaves = [], [], []
    for kind, width in shape:
        rows = n if kind in ("src", "dst", "delta") else e
        value = torch.randn(rows, width, generator=gen, dtype=torch.float64, requires_grad=True)
        leaves.append(value)
        if kind in ("src", "dst"):
            blocks.append(Block(value, index[kind], width))
            columns.append(value[index[kind]])
        elif kind == "edge":
            blocks.append(Block(value, None, width))
            columns.append(value)
        elif kind == "zero":
            blocks.append(Block(None, None, width))
            columns.append(torch.zeros(e, width, dtype=torch.float64))
        else:  # a node block read through a hook that shifts its rows
            shift = torch.randn(e, width, generator=gen, dtype=torch.float64)
            rows_in = value[index["src"]]
            block = source_block(value, SourceRows(rows_in, rows_in + shift), index["src"])
            blocks.append(block)
            columns.append(rows_in + shift)
    got = concat_linear(lin, blocks, e)
    want = lin(torch.cat(columns, -1)) if columns else None
    torch.testing.assert_close(got, want)
    weights = torch.randn(got.shape, generator=gen, dtype=torch.float64)
    wrt = [*leaves, lin.weight, lin.bias]
    mine = torch.autograd.grad((got * weights).sum(), wrt, allow_unused=True, retain_graph=True)
    theirs = torch.autograd.grad((want * weights).sum(), wrt, allow_unused=True)
    for a, b in zip(mine, theirs):
        if a is None or b is None:
            assert (a is None or not a.any()) and (b is None or not b.any())
        else:
            torch.testing.assert_close(a, b)


def test_concat_linear_names_the_block_of_the_wrong_width() -> None:
    lin = nn.Linear(4, 2)
    with pytest.raises(ValueError, match=r"block 1 should be \[rows, 2\], got \(3, 3\)"):
        concat_linear(lin, [Block(torch.zeros(3, 2), None, 2), Block(torch.zeros(3, 3), None, 2)], 3)
    with pytest.raises(ValueError, match="5 columns wide in all, but the linear layer takes 4"):
        concat_linear(lin, [Block(None, None, 5)], 3)
