"""A forward hook that edits its tensor in place equals one that returns the edited copy.

At every hook point of every built-in processor (through ``HookedGNN``), of a
``from_layers`` stack and of wrapped PyG models (``from_pyg``): one run whose hook edits
in place and returns ``None`` (``t[..., 0] = 0``, ``t.mul_(0.5)``) against one run whose
hook returns an edited copy; the outputs and the parameter gradients must be equal. The
reference is the returned copy, the documented way to replace an activation. Graphs have
self-loops, parallel edges and isolated nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import graphs
from torch import Tensor, nn

from hookgnn import FeatureSpec, Graph, HookedGNN
from hookgnn.hooks import HookedRootModule, HookError, HookPoint
from hookgnn.nn import PROCESSORS, SAGE, MLPConv

pytestmark = pytest.mark.usefixtures("one_thread")

D_IN, D_EDGE = 3, 2
SPEC = {"d": FeatureSpec("output", "node", "scalar"), "bridge": FeatureSpec("output", "edge", "mask"),
        "weight": FeatureSpec("output", "graph", "scalar")}


def _graph(seed: int = 0) -> Graph:
    """Six nodes: a self-loop (2 -> 2), parallel edges (0 -> 1 twice), node 5 isolated."""
    gen = torch.Generator().manual_seed(seed)
    ei = torch.tensor([[0, 0, 1, 2, 2, 3, 4, 3], [1, 1, 2, 2, 0, 4, 3, 0]])
    return Graph(x=torch.randn(6, D_IN, generator=gen), edge_index=ei,
                 edge_attr=torch.randn(ei.shape[1], D_EDGE, generator=gen))


def _zero_first(t: Tensor) -> Tensor:
    t[..., 0] = 0
    return t


def _halve(t: Tensor) -> Tensor:
    return t.mul_(0.5)


EDITS: dict[str, Callable[[Tensor], Tensor]] = {"zero_first": _zero_first, "halve": _halve}


def in_place(edit: Callable[[Tensor], Tensor]) -> Callable[..., None]:
    def hook(t: Tensor, hook: HookPoint) -> None:
        edit(t)  # TransformerLens style: edit, return nothing

    return hook


def as_copy(edit: Callable[[Tensor], Tensor]) -> Callable[..., Tensor]:
    def hook(t: Tensor, hook: HookPoint) -> Tensor:
        return edit(t.clone())

    return hook


def _outputs(out: Any) -> list[Tensor]:
    if isinstance(out, Tensor):
        return [out]
    return [out.hidden, *out.outputs.values()]


def _run(model: HookedRootModule, call: Callable[[], Any], fwd_hooks: list) -> tuple[list[Tensor], list[Tensor]]:
    """Outputs, and gradients of a fixed random projection of them, for every parameter."""
    with model.hooks(fwd_hooks=fwd_hooks):
        outs = _outputs(call())
    gen = torch.Generator().manual_seed(1)
    loss = sum((o * torch.randn(o.shape, generator=gen, dtype=o.dtype)).sum() for o in outs)
    params = [p for p in model.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [o.detach() for o in outs], [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _assert_close(got: list[Tensor], want: list[Tensor], what: str) -> None:
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        scale = max(1.0, b.abs().max().item()) if b.numel() else 1.0
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * scale, msg=lambda m: f"{what}[{i}]: {m}")


def _check_every_hook_point(model: HookedRootModule, call: Callable[[], Any]) -> None:
    names = list(model.hook_dict)
    assert names, "the model has no hook points"
    for name in names:
        for edit_name, edit in EDITS.items():
            fired: list[str] = []

            def counted(hook_fn: Callable[..., Any]) -> Callable[..., Any]:
                def hook(t: Tensor, hook: HookPoint) -> Any:
                    fired.append(hook.name)
                    return hook_fn(t, hook=hook)

                return hook

            out_copy, grads_copy = _run(model, call, [(name, counted(as_copy(edit)))])
            out_in_place, grads_in_place = _run(model, call, [(name, counted(in_place(edit)))])
            assert fired, f"{name} never fired"
            _assert_close(out_in_place, out_copy, f"{name} {edit_name} outputs")
            _assert_close(grads_in_place, grads_copy, f"{name} {edit_name} parameter gradients")


# ------------------------------------------------------------------ hookgnn models
def _hooked_gnn(processor: str | Callable[[int], nn.Module]) -> HookedGNN:
    torch.manual_seed(0)
    return HookedGNN(processor, d_hidden=4, node_in=D_IN, edge_in=D_EDGE, spec=SPEC, max_steps=2, tie_weights=False)


EXTRA_PROCESSORS: dict[str, Callable[[int], nn.Module]] = {
    "sage_max": lambda d: SAGE(d, aggr="max"),  # gcn, gin and sage (mean) are in PROCESSORS
    "mlp_conv": lambda d: MLPConv(d, d, d_edge=d, d_mlp=5),
}


@pytest.mark.parametrize("processor", [*sorted(PROCESSORS), *sorted(EXTRA_PROCESSORS)])
def test_in_place_edit_equals_returned_copy_at_every_hook_point_of_every_processor(processor: str) -> None:
    model = _hooked_gnn(EXTRA_PROCESSORS.get(processor, processor))
    g = _graph()
    _check_every_hook_point(model, lambda: model(g))


def test_in_place_edit_equals_returned_copy_at_every_hook_point_of_a_from_layers_stack() -> None:
    torch.manual_seed(0)
    model = HookedGNN.from_layers([MLPConv(D_IN, 6, d_edge=D_EDGE, d_mlp=5), MLPConv(6, 2, d_edge=D_EDGE, d_mlp=5)])
    g = _graph()
    _check_every_hook_point(model, lambda: model(g))


@pytest.mark.parametrize("processor", ["mpnn", "triplet_gmpnn", "gat"])
@settings(max_examples=10, deadline=None)
@given(g=graphs(min_nodes=1, node_features=D_IN, edge_features=D_EDGE, max_edges=12), seed=st.integers(0, 2**16))
def test_in_place_edit_of_the_source_rows_equals_returned_copy_on_random_graphs(processor: str, g: Graph,
                                                                                 seed: int) -> None:
    torch.manual_seed(seed)
    model = HookedGNN(processor, d_hidden=4, node_in=D_IN, edge_in=D_EDGE, spec=SPEC, max_steps=2)
    for name in ("layers.0.hook_src", "layers.1.hook_src", "layers.1.hook_message"):
        out_copy, grads_copy = _run(model, lambda: model(g), [(name, as_copy(_halve))])
        out_in_place, grads_in_place = _run(model, lambda: model(g), [(name, in_place(_halve))])
        _assert_close(out_in_place, out_copy, f"{name} outputs")
        _assert_close(grads_in_place, grads_copy, f"{name} parameter gradients")


def test_ablating_the_source_rows_in_place_changes_the_output_as_a_copy_does() -> None:
    # The reported bug: on the projected fast path an in-place edit at hook_src had no effect.
    model = _hooked_gnn("mpnn")
    g = _graph()
    clean = model(g).hidden
    ablated = model.run_with_hooks(g, fwd_hooks=[("layers.0.hook_src", in_place(_zero_first))]).hidden
    copied = model.run_with_hooks(g, fwd_hooks=[("layers.0.hook_src", as_copy(_zero_first))]).hidden
    assert not torch.equal(copied, clean)
    _assert_close([ablated], [copied], "hidden")


def test_hooks_that_only_read_change_no_bit_of_the_outputs() -> None:
    model = _hooked_gnn("triplet_gmpnn")
    g = _graph()
    plain, plain_grads = _run(model, lambda: model(g), [])
    read, read_grads = _run(model, lambda: model(g), [(lambda n: True, lambda t, hook: None)])
    for a, b in zip(read, plain):
        assert torch.equal(a, b)
    _assert_close(read_grads, plain_grads, "parameter gradients")


def test_an_in_place_edit_that_changes_the_shape_raises_naming_the_hook_point() -> None:
    model = _hooked_gnn("mpnn")

    def add_axis(t: Tensor, hook: HookPoint) -> None:
        t.unsqueeze_(0)

    with pytest.raises(HookError, match=r"layers\.0\.hook_message.*in place.*return"):
        model.run_with_hooks(_graph(), fwd_hooks=[("layers.0.hook_message", add_axis)])
    assert all(i.num_fwd == 0 for i in model.list_hooks())


def test_a_hook_that_stores_its_tensor_keeps_it_when_a_later_hook_edits_in_place() -> None:
    model = _hooked_gnn("mpnn")
    g = _graph()
    kept: list[Tensor] = []
    model.run_with_hooks(g, fwd_hooks=[("layers.0.hook_message", lambda t, hook: kept.append(t)),
                                       ("layers.0.hook_message", in_place(_halve))])
    _, cache = model.run_with_cache(g, names_filter="layers.0.hook_message")
    torch.testing.assert_close(kept[0].detach(), cache["layers.0.hook_message"], rtol=0, atol=0)


def test_an_in_place_edit_of_a_gradient_leaves_the_gradient_of_other_terms_alone() -> None:
    # The backward of z = w + x hands one gradient tensor to both terms; a backward hook
    # at x that edits it in place must not change what reaches w (as returning a copy does not).
    def grads_with(fn: Callable[..., Any]) -> tuple[Tensor, Tensor]:
        a = torch.tensor([1.0, 2.0, 3.0], requires_grad=True)
        b = torch.tensor([4.0, 5.0, 6.0], requires_grad=True)
        hp = HookPoint()
        hp.add_hook(fn, dir="bwd")
        w = b * 3  # made first, so its backward runs after x's
        x = hp(a * 2)
        (w + x).backward(torch.tensor([1.0, -2.0, 0.5]))
        return a.grad, b.grad  # type: ignore[return-value]

    got, want = grads_with(in_place(_zero_first)), grads_with(as_copy(_zero_first))
    _assert_close(list(got), list(want), "gradients")
    assert got[0][0] == 0 and got[1][0] == 3


# --------------------------------------------------------------- wrapped PyG models
pyg = pytest.importorskip("torch_geometric.nn")
from hookgnn.interop import from_pyg  # noqa: E402


def _mlp(d_in: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, 5), nn.ReLU(), nn.Linear(5, d_out))


class OneConv(nn.Module):
    """Two convolutions with a ReLU module between, then a Linear head."""

    def __init__(self, first: nn.Module, second: nn.Module, uses_edges: bool, d_out: int) -> None:
        super().__init__()
        self.first, self.second, self.uses_edges = first, second, uses_edges
        self.act, self.head = nn.ReLU(), nn.Linear(d_out, 2)

    def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
        extra = (edge_attr,) if self.uses_edges else ()
        h = self.act(self.first(x, edge_index, *extra))
        return self.head(self.second(h, edge_index, *extra))


class Recurrent(nn.Module):
    """A GRU-style processor: one convolution called every round, its result fed to a GRU cell."""

    def __init__(self, rounds: int = 3, d: int = 4) -> None:
        super().__init__()
        self.rounds, self.encode = rounds, nn.Linear(D_IN, d)
        self.conv, self.gru, self.head = pyg.GCNConv(d, d), nn.GRUCell(d, d), nn.Linear(d, 1)

    def forward(self, x, edge_index):  # noqa: ANN001, ANN201
        h = self.encode(x).relu()
        for _ in range(self.rounds):
            h = self.gru(self.conv(h, edge_index), h)
        return self.head(h)


class Plain(nn.Module):
    """A model called on (x, edge_index, edge_attr) that ignores the edge features."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x, edge_index, edge_attr):  # noqa: ANN001, ANN201
        return self.inner(x, edge_index)


class _GatedHead(nn.Module):
    """PyG's own GRU-style processor (GatedGraphConv: propagate, then a GRU cell, twice)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head = pyg.GatedGraphConv(4, num_layers=2), nn.Linear(4, 1)

    def forward(self, x, edge_index):  # noqa: ANN001, ANN201
        return self.head(self.conv(x, edge_index))


PYG_MODELS: dict[str, Callable[[], nn.Module]] = {
    "gine": lambda: OneConv(pyg.GINEConv(_mlp(D_IN, 4), edge_dim=D_EDGE, train_eps=True, eps=0.1),
                            pyg.GINEConv(_mlp(4, 4), edge_dim=D_EDGE), True, 4),
    "gcn": lambda: OneConv(pyg.GCNConv(D_IN, 4), pyg.GCNConv(4, 3), False, 3),
    "gat": lambda: OneConv(pyg.GATConv(D_IN, 2, heads=2, edge_dim=D_EDGE), pyg.GATConv(4, 3, edge_dim=D_EDGE),
                           True, 3),
    "lgconv": lambda: OneConv(pyg.LGConv(), pyg.LGConv(), False, D_IN),
    "basic_gnn_gin": lambda: Plain(pyg.models.GIN(D_IN, 5, num_layers=2, out_channels=2)),
    "recurrent_gru": lambda: Plain(Recurrent()),
    "gated_graph_conv": lambda: Plain(_GatedHead()),
}


@pytest.mark.parametrize("kind", sorted(PYG_MODELS))
def test_in_place_edit_equals_returned_copy_at_every_hook_point_of_a_wrapped_pyg_model(kind: str) -> None:
    torch.manual_seed(0)
    net = PYG_MODELS[kind]().eval()
    g = _graph()
    hooked = from_pyg(net, example=(g.x, g.edge_index, g.edge_attr))
    assert any(".hook_src" in n for n in hooked.hook_dict), sorted(hooked.hook_dict)
    _check_every_hook_point(hooked, lambda: hooked(g.x, g.edge_index, g.edge_attr))


def test_an_in_place_edit_at_a_wrapped_models_input_leaves_the_callers_tensor_alone() -> None:
    torch.manual_seed(0)
    net = PYG_MODELS["gcn"]().eval()
    g = _graph()
    x = g.x.clone()
    hooked = from_pyg(net, example=(x, g.edge_index, g.edge_attr))
    inputs = [n for n in hooked.hook_dict if n.endswith("hook_input") or n == "hook_x"]
    assert inputs
    for name in inputs:
        hooked.run_with_hooks(x, g.edge_index, g.edge_attr, fwd_hooks=[(name, in_place(_zero_first))])
        assert torch.equal(x, g.x), name
