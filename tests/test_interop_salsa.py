"""A SALSA-CLRS-style model (``forward(batch)``, in-place ``h += ...``, list attributes on the
batch; :mod:`salsa_like`) wrapped with ``hookgnn.from_pyg``, checked against the original
run with plain autograd: attribution, EAP-IG's interpolation of the fields it reads, the
README route through ``Graph.from_pyg``, the original's attributes, and input hooks only
for inputs the forward reads."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from hookgnn import Field, Graph
from hookgnn.attribution import attribute, eap
from hookgnn.patching.components import WeightEdge

pyg = pytest.importorskip("torch_geometric.nn")
from salsa_like import SalsaLike, d_error, salsa_batch, salsa_inputs, salsa_linears, salsa_pair  # noqa: E402

from hookgnn import from_pyg  # noqa: E402
from hookgnn.interop import StructureError  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread (tests/conftest.py)

STEPS = 3  # processor rounds of SalsaLike
#: hook name -> (Linear path in the original, its call in one forward), from the architecture
LINEAR_HOOKS = {"encoder.s.hook_out": ("encoder.s", 0), "encoder.pos.hook_out": ("encoder.pos", 0),
                "decoder.d.hook_out": ("decoder.d", 0),
                **{f"core.calls.{k}.nn.{i}.hook_out": (f"core.nn.{i}", k) for k in range(STEPS) for i in (0, 2)}}


def record(model: nn.Module, batch: object) -> tuple[dict, dict[str, list[torch.Tensor]]]:
    """Run the original, keeping every Linear call's output; the model goes on with a copy,
    so its in-place ``+=`` leaves the recorded output (the Linear's own) as it was."""
    outs: dict[str, list[torch.Tensor]] = {n: [] for n in salsa_linears(model)}

    def keep(name: str):  # noqa: ANN202
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            outs[name].append(output)
            return output.clone()
        return hook

    handles = [m.register_forward_hook(keep(n)) for n, m in salsa_linears(model).items()]
    try:
        return model(batch), outs
    finally:
        for h in handles:
            h.remove()


def textbook_ig(model: nn.Module, clean: object, corrupted: object, steps: int) -> dict[str, torch.Tensor]:
    """``(z_src - z_base) * mean_k dm/dz`` at every Linear call, by hand: base = corrupted,
    source = clean (denoising), gradients at inputs ``s``, ``pos`` = base + alpha_k (source - base),
    alpha_k = (k + 1/2) / steps (``steps = 0``: the base itself)."""
    with torch.no_grad():
        _, z_base = record(model, corrupted)
        _, z_src = record(model, clean)
    alphas = [0.0] if steps == 0 else [(k + 0.5) / steps for k in range(steps)]
    gbar = {h: torch.zeros_like(z_base[p][c]) for h, (p, c) in LINEAR_HOOKS.items()}
    for a in alphas:
        point = copy.copy(corrupted)
        point.s = corrupted.s + a * (clean.s - corrupted.s)
        point.pos = corrupted.pos + a * (clean.pos - corrupted.pos)
        out, z = record(model, point)
        grads = torch.autograd.grad(d_error(out, point).mean(), [z[p][c] for p, c in LINEAR_HOOKS.values()])
        for h, g in zip(LINEAR_HOOKS, grads):
            gbar[h] += g / len(alphas)
    return {h: (z_src[p][c] - z_base[p][c]) * gbar[h] for h, (p, c) in LINEAR_HOOKS.items()}


@pytest.fixture(scope="module")
def setup():  # noqa: ANN201
    model = SalsaLike(seed=0)
    clean_b, corrupted_b = salsa_pair(seed=0)
    clean, corrupted = Graph.from_pyg(clean_b), Graph.from_pyg(corrupted_b)
    # the batch rebuilt by hand (salsa_inputs), so these tests do not depend on the README route's
    return model, clean_b, corrupted_b, clean, corrupted, from_pyg(model, example=clean, inputs=salsa_inputs)


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    scale = float(want.abs().max())
    torch.testing.assert_close(got, want, atol=1e-5 * scale + 1e-8, rtol=1e-4)


def test_the_readme_route_runs_a_model_that_reads_list_attributes(setup):
    model, clean_b, _, clean, _, _ = setup
    hooked = from_pyg(model, example=clean)
    assert clean.meta == {"inputs": ["s", "pos"], "outputs": ["d"], "hints": ["pi_h"]}
    with torch.no_grad():
        want = model(clean_b)["d"]
        torch.testing.assert_close(hooked(clean)["d"], want, atol=0, rtol=0)
        torch.testing.assert_close(hooked(clean_b)["d"], want, atol=0, rtol=0)  # called like the original
        torch.testing.assert_close(hooked(Graph.collate(clean.split()))["d"], want, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("keep", ["all", "entries"])
def test_attribution_through_an_in_place_add_equals_plain_autograd(setup, keep):
    model, clean_b, corrupted_b, clean, corrupted, hooked = setup
    attr = attribute(hooked, clean, corrupted, d_error, names_filter=list(LINEAR_HOOKS), keep=keep)
    want = textbook_ig(model, clean_b, corrupted_b, 0)
    for h in LINEAR_HOOKS:
        _close(attr.entries(h), want[h])
    assert float(want["encoder.s.hook_out"].abs().sum()) > 1e-6  # the edited activation matters


def test_eap_weight_scores_through_an_in_place_add_equal_the_textbook_formula(setup):
    model, clean_b, corrupted_b, clean, corrupted, hooked = setup
    scores = eap(hooked, clean, corrupted, d_error, level="weight")
    # the only Linear fed by a hooked neuron: core.nn.2 (input: core.nn.1's relu), per round
    lin = model.core.nn[2]
    ins: list[torch.Tensor] = []
    outs: list[torch.Tensor] = []

    def run(batch: object) -> dict:
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            ins.append(inputs[0])
            outs.append(output)
        handle = lin.register_forward_hook(hook)
        try:
            return model(batch)
        finally:
            handle.remove()

    with torch.no_grad():
        run(clean_b)
        u_src = ins[:]
    ins.clear()
    outs.clear()
    out = run(corrupted_b)
    grads = torch.autograd.grad(d_error(out, corrupted_b).mean(), outs)
    got = {(e.dst.hook, e.dst.feature, e.src.feature): s for e, s in scores.as_dict().items()
           if isinstance(e, WeightEdge) and e.dst.hook.endswith("nn.2.hook_out")}
    assert len(got) == STEPS * lin.weight.numel()
    for k in range(STEPS):
        want = lin.weight.detach() * ((u_src[k] - ins[k]).detach().T @ grads[k]).T  # [j, i]
        mine = torch.tensor([[got[(f"core.calls.{k}.nn.2.hook_out", j, i)] for i in range(want.shape[1])]
                             for j in range(want.shape[0])])
        _close(mine, want)


@pytest.mark.parametrize("keep", ["all", "rows"])
def test_eap_ig_interpolates_the_fields_the_model_reads(setup, keep):
    model, clean_b, corrupted_b, clean, corrupted, hooked = setup
    assert hooked.input_fields() == {"s", "pos"}
    attr = attribute(hooked, clean, corrupted, d_error, ig_steps=4, names_filter=list(LINEAR_HOOKS), keep=keep)
    want = textbook_ig(model, clean_b, corrupted_b, 4)
    at_base = textbook_ig(model, clean_b, corrupted_b, 0)
    for h in LINEAR_HOOKS:
        _close(attr.entries(h) if keep == "all" else attr.row_sums(h), want[h] if keep == "all" else want[h].sum(-1))
    # interpolation matters here: the base-point estimate is far from the integrated one
    assert (want["decoder.d.hook_out"] - at_base["decoder.d.hook_out"]).abs().max() > 1e-3


def test_eap_ig_refuses_a_field_it_reads_but_cannot_interpolate():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.lin = nn.Linear(1, 4)
            self.conv = pyg.GINConv(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1)))

        def forward(self, data):  # noqa: ANN001, ANN201
            return self.conv(self.lin(data.s.flatten(1)[:, :1]), data.edge_index)

    g = Graph.from_pyg(salsa_batch())
    clean = g.with_fields(s=Field(torch.rand(g.num_nodes, 1), "node"))
    corrupted = clean.with_fields(s=Field(torch.rand(clean.num_nodes, 2), "node"))
    hooked = from_pyg(Net(), example=clean)
    metric = lambda out, g: out.sum().reshape(1)  # noqa: E731
    with pytest.raises(ValueError, match="field 's'.*cannot be interpolated"):
        attribute(hooked, clean, corrupted, metric, ig_steps=2)


def test_the_wrapper_reads_the_originals_attributes(setup):
    model, *_, hooked = setup
    assert hooked.supports_edge_attr is False and hooked.has_edge_weight() is False
    assert hooked.steps == STEPS and hooked.model is model and hooked.core is model.core
    assert [p for p in hooked.parameters()] == [p for p in model.parameters()]
    hooked.extra = 1  # set on the wrapper, as on any nn.Module; the original is untouched
    assert hooked.extra == 1 and not hasattr(model, "extra")
    with pytest.raises(AttributeError, match="neither the wrapper PyGModel nor the wrapped SalsaLike.*'nope'"):
        hooked.nope  # noqa: B018


def test_input_hooks_only_for_inputs_the_forward_reads(setup):
    model, clean_b, *_ = setup
    for example in (clean_b, Graph.from_pyg(clean_b)):  # its own batch (x absent), a Graph (x: [N, 0])
        inputs = {n for n in from_pyg(model, example=example).hook_dict if n.startswith("hook_")}
        assert inputs == {"hook_s", "hook_pos"}  # not x, edge_weight, d, pi_h, length

    class Weighted(nn.Module):
        def __init__(self, use: bool) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.use, self.conv = use, pyg.GCNConv(1, 2)

        def forward(self, x, edge_index, edge_weight=None):  # noqa: ANN001, ANN201
            return self.conv(x, edge_index, edge_weight if self.use else None)

    g = Graph(x=torch.randn(4, 1), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]), edge_attr=torch.rand(3, 1))
    for use in (False, True):
        names = {n for n in from_pyg(Weighted(use), example=g).hook_dict if n.startswith("hook_")}
        assert names == ({"hook_x", "hook_edge_weight"} if use else {"hook_x"})


def test_an_unforeseen_in_place_edit_of_a_hooked_activation_raises():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.lin = nn.Linear(1, 4)
            self.conv = pyg.GINConv(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 1)))
            self.edit = False

        def forward(self, x, edge_index):  # noqa: ANN001, ANN201
            h = self.lin(x)
            if self.edit:
                h.mul_(2.0)
            return self.conv(h, edge_index)

    net = Net()
    g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    hooked = from_pyg(net, example=g)
    net.edit = True
    with pytest.raises(StructureError, match="edited call 0 of lin in place"):
        hooked.run_with_cache(g)
    assert all(i.num_fwd == 0 and i.num_bwd == 0 for i in hooked.list_hooks())
    hooked.discover(g)  # rediscovered: the model gets a copy, the cache keeps the Linear's own output
    out, cache = hooked.run_with_cache(g)
    torch.testing.assert_close(cache["lin.hook_out"], net.lin(g.x))
    torch.testing.assert_close(out, net(g.x, g.edge_index))


def test_a_shared_activation_of_pygs_basic_gnn_belongs_to_the_layer_it_follows():
    torch.manual_seed(0)
    net = pyg.models.GIN(2, 8, num_layers=4, out_channels=1).eval()
    g = Graph(x=torch.randn(5, 2), edge_index=torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]))
    # the round of each call of the shared act, from the original's own call order: the conv
    # running (act inside its MLP) or else the last conv that ran (act between layers)
    order: list[tuple[str, int]] = []
    handles = [h for k, m in enumerate(net.convs) for h in (
        m.register_forward_pre_hook(lambda m, i, k=k: order.append(("start", k))),
        m.register_forward_hook(lambda m, i, o, k=k: order.append(("end", k))))]
    handles.append(net.act.register_forward_hook(lambda m, i, o: order.append(("act", -1))))
    with torch.no_grad():
        net(g.x, g.edge_index)
    for h in handles:
        h.remove()
    rounds, running, last = [], None, None
    for kind, k in order:
        if kind == "start":
            running = k
        elif kind == "end":
            running, last = None, k
        else:
            rounds.append(running if running is not None else last)
    assert rounds == [0, 0, 1, 1, 2, 2, 3]  # in each conv's MLP, and between layers

    hooked = from_pyg(net, example=(g.x, g.edge_index))
    links = [link for t in range(hooked.num_rounds) for link in hooked.round_links(t)]
    for j, t in enumerate(rounds):
        name = f"act.calls.{j}.hook_out"
        assert hooked.round_of(name) == t
        i = rounds[:j].count(t)  # its call within round t
        assert hooked.round_hook(f"act.calls.{i}.hook_out", t) == name
        into = [link for link in links if link.dst == name]
        assert into and all(link.round == t for link in into)
    between = [f"act.calls.{j}.hook_out" for j in (1, 3, 5)]
    assert {link.src for link in links if link.dst in between} == {f"convs.{t}.hook_output" for t in range(3)}
    assert set(hooked.counterparts("act.calls.1.hook_out")) == set(between)


def test_graph_meta_survives_copies_parts_unions_and_pyg_round_trips():
    g = Graph.from_pyg(salsa_batch())
    want = {"inputs": ["s", "pos"], "outputs": ["d"], "hints": ["pi_h"]}
    assert g.meta == want
    for copy_ in (g.replace(x=g.x + 1), g.to(torch.float64), g.to("cpu"), g.graph(1), Graph.collate(g.split()),
                  *g.split()):
        assert copy_.meta == want
    assert g.to_pyg().inputs == ["s", "pos"]
    assert Graph.from_pyg(g.to_pyg()).meta == want
    other = Graph(x=g.x, edge_index=g.edge_index, ptr=g.ptr, fields=g.fields, meta={**want, "inputs": ["s"]})
    with pytest.raises(ValueError, match=r"meta\['inputs'\]"):
        Graph.collate([g, other])
    with pytest.raises(ValueError, match=r"meta\['w'\] is a tensor"):
        Graph(x=g.x, edge_index=g.edge_index, meta={"w": torch.ones(1)})
