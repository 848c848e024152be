"""The helpers tutorials 4 and 5 compute their numbers with, against references that do
not use them: plain PyTorch module hooks on the original PyG network (the published
scoring formula), and weight entries zeroed in a copy (circuit-only and ablated losses).
"""

from __future__ import annotations

import copy
import random
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("torch_geometric")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tutorials"))
import bf_published as bfp  # noqa: E402  (a module: its test_set must not be collected)
import neuron_circuits as nc  # noqa: E402

from hookgnn import from_pyg  # noqa: E402
from hookgnn.attribution import attribute, eap  # noqa: E402
from hookgnn.patching.components import WeightEdge  # noqa: E402

D_IN = {"convs.0": 1, "convs.1": 8}
#: The activation module the published code sees after each Linear (None: the output).
ACT_AFTER = {"msg_mlp.0": "msg_mlp.1", "msg_mlp.2": "msg_act", "upd_mlp.0": "upd_mlp.1"}


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread (tests/conftest.py)


@pytest.fixture(scope="module")
def setup() -> tuple[nn.Module, object, object]:
    net = bfp.published_network(d_in=1, d_out=1, seed=3).eval()
    graphs = bfp.test_set(per_family=1, max_nodes=6, seed=2)
    return net, graphs, bfp.corrupt(graphs)


def entry(edge: WeightEdge) -> tuple[str, int, int]:
    """(Linear path, row, column) of a weight edge, from the architecture written by hand:
    msg_mlp.0 reads [x_j, w]; upd_mlp.0 reads [aggregation (64), x]; the others their hidden layer."""
    linear = edge.dst.hook.removesuffix(".hook_out")
    conv = linear[:7]
    src = edge.src.hook
    offset = {"hook_edge_attr": D_IN[conv], f"{conv}.hook_input": bfp.WIDTH}.get(src, 0)
    return linear, edge.dst.feature, edge.src.feature + offset


def act_after(net: nn.Module, linear: str) -> nn.Module | None:
    conv, rest = linear[:7], linear[8:]
    if rest in ACT_AFTER:
        return net.get_submodule(f"{conv}.{ACT_AFTER[rest]}")
    return net.act if linear == "convs.0.upd_mlp.2" else None


def published_by_hand(net: nn.Module, clean, corrupted) -> dict[str, torch.Tensor]:  # noqa: ANN001
    """|(delta of the Linear's output, after its activation)^T (gradient at the Linear's input)|
    with plain forward hooks and full backward hooks, gradient at the corrupted run."""
    linears = {n: m for n, m in net.named_modules() if isinstance(m, nn.Linear)}
    outs: dict[str, dict[str, torch.Tensor]] = {"clean": {}, "corrupted": {}}
    grad_in: dict[str, torch.Tensor] = {}

    def record(run: str, name: str):  # noqa: ANN202
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            act = act_after(net, name)
            outs[run][name] = (act(output) if act is not None else output).detach()
        return hook

    def backward(name: str):  # noqa: ANN202
        def hook(module: nn.Module, grad_input: tuple, grad_output: tuple) -> None:
            grad_in[name] = grad_input[0].detach()
        return hook

    for run, g in (("clean", clean), ("corrupted", corrupted)):
        handles = [m.register_forward_hook(record(run, n)) for n, m in linears.items()]
        if run == "corrupted":
            handles += [m.register_full_backward_hook(backward(n)) for n, m in linears.items()]
        try:
            x = g.x.clone().requires_grad_(run == "corrupted")
            out = net(x, g.edge_index, edge_attr=g.edge_attr)
            if run == "corrupted":
                bfp.distance_se(out, g).mean().backward()
        finally:
            for h in handles:
                h.remove()
    return {n: ((outs["clean"][n] - outs["corrupted"][n]).T @ grad_in[n]).abs() for n in linears}


def test_published_formula_equals_module_hooks_on_the_original(setup) -> None:  # noqa: ANN001
    net, clean, corrupted = setup
    hooked = from_pyg(net, example=clean)
    attr = attribute(hooked, clean, corrupted, bfp.distance_se, ig_steps=0)
    got = nc.published_formula(hooked, attr)
    want = published_by_hand(net, clean, corrupted)
    assert len(got) == sum(m.weight.numel() for m in net.modules() if isinstance(m, nn.Linear))
    g = torch.tensor([s for s in got.values()])
    w = torch.tensor([float(want[lin][j, i]) for lin, j, i in map(entry, got)])
    torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-6)
    assert float(w.max()) > 1e-3  # not all zero


def test_published_formula_scores_a_zero_weight_the_textbook_formula_does_not(setup) -> None:  # noqa: ANN001
    """An entry set to exactly 0 carries nothing: its textbook score is 0; the published
    score reads the output's difference and the input's gradient, not the entry itself."""
    net, clean, corrupted = setup
    net = copy.deepcopy(net)
    lin = net.get_submodule("convs.1.upd_mlp.0")
    with torch.no_grad():
        lin.weight[5, 3] = 0.0  # row 5 reads aggregation neuron 3
    hooked = from_pyg(net, example=clean)
    text = nc.linear_edges(hooked, eap(hooked, clean, corrupted, bfp.distance_se, level="weight",
                                       zero_weights=True))
    pub = nc.published_formula(hooked, attribute(hooked, clean, corrupted, bfp.distance_se, ig_steps=0))
    zero = next(e for e in pub if entry(e) == ("convs.1.upd_mlp.0", 5, 3))
    assert text[zero] == 0.0
    others = [v for e, v in pub.items() if e.dst == zero.dst]
    assert pub[zero] > 0.0 and pub[zero] >= 1e-3 * max(others)


def test_sweep_sizes_equal_zeroed_weights_in_a_copy(setup) -> None:  # noqa: ANN001
    net, clean, _ = setup
    hooked = from_pyg(net, example=clean)
    universe = list(nc.linear_edges(hooked, eap(hooked, clean, clean, bfp.distance_se, level="weight")))
    random.Random(0).shuffle(universe)
    where = [entry(e) for e in universe]
    sizes = [7, len(universe) // 2]
    rows = nc.sweep_sizes(hooked, clean, bfp.relative_error, universe, sizes)
    for n, row in zip(sizes, rows):
        for kept, key in ((range(n), "circuit"), (range(n, len(universe)), "ablated")):
            zeroed = copy.deepcopy(net)
            keep = {lin: torch.zeros_like(zeroed.get_submodule(lin).weight) for lin, _, _ in where}
            for k in kept:
                lin, j, i = where[k]
                keep[lin][j, i] = 1.0
            with torch.no_grad():
                for lin, mask in keep.items():
                    zeroed.get_submodule(lin).weight.mul_(mask)
                out = zeroed(clean.x, clean.edge_index, edge_attr=clean.edge_attr)
            assert row[key] == pytest.approx(float(bfp.relative_error(out, clean).mean()), rel=1e-4, abs=1e-6)
    assert rows[0]["circuit"] != pytest.approx(rows[1]["circuit"])  # the sizes differ in what they keep
