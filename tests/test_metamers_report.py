"""The invariance report, the model variants it compares, and the ``hookgnn metamer`` command."""

from __future__ import annotations

import json

import matplotlib
import pytest
import torch

from hookgnn import Graph
from hookgnn.cli import main
from hookgnn.metamers import Box, EdgeSpace
from hookgnn.metamers.report import invariance_report
from hookgnn.metamers.variants import Variant, VariantMPNN
from hookgnn.nn import MPNN
from hookgnn.tasks import get_task
from hookgnn.training import save_checkpoint
from hookgnn.training.config import build_model

matplotlib.use("Agg")


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one torch thread (tests/conftest.py)


def layer_inputs(d: int = 6):
    gen = torch.Generator().manual_seed(0)
    h = torch.randn(4, d, generator=gen)
    edges = torch.tensor([[0, 1, 2, 3, 0], [1, 2, 3, 0, 2]])
    return h, edges, torch.randn(5, d, generator=gen), torch.randn(4, d, generator=gen)


def test_relu_variant_is_mpnn_and_residual_adds_the_state():
    h, ei, e, x = layer_inputs()
    base = MPNN(6)
    for residual in (False, True):
        variant = VariantMPNN(6, "relu", residual=residual)
        variant.load_state_dict(base.state_dict())  # same parameter names and shapes
        expected = base(h, ei, e, x=x) + (h if residual else 0)
        torch.testing.assert_close(variant(h, ei, e, x=x), expected)


def test_elu_variant_uses_elu_everywhere_and_differs_from_relu():
    h, ei, e, x = layer_inputs()
    elu = VariantMPNN(6, "elu")
    acts = [type(m).__name__ for m in elu.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.ELU))]
    assert acts and set(acts) == {"ELU"}
    relu = VariantMPNN(6, "relu")
    relu.load_state_dict(elu.state_dict())
    assert not torch.allclose(relu(h, ei, e, x=x), elu(h, ei, e, x=x))
    with pytest.raises(ValueError, match="activation"):
        VariantMPNN(6, "tanh")


def test_a_variant_cannot_be_saved_as_a_plain_mpnn_checkpoint(tmp_path):
    model = Variant("elu", activation="elu", depth=2, width=8).build(get_task("bellman_ford"))
    with pytest.raises(ValueError, match="processor"):
        save_checkpoint(tmp_path / "m.pt", model, "bellman_ford")


def test_invariance_report_table_figure_and_json():
    bf = get_task("bellman_ford")
    models = {v.name: v.build(bf) for v in (Variant("relu", depth=2, width=8),
                                           Variant("elu+res", activation="elu", residual=True, depth=2, width=8))}
    g = bf.sample(1, "erdos_renyi", seed=1, n=5, p=0.5)
    ref = Graph(x=g.x, edge_index=g.edge_index, edge_attr=g.edge_attr)
    searches = {"weights": lambda r: {"features": None, "edge_features": Box()},
                "structure": lambda r: {"features": None, "structure": EdgeSpace(keep="self_loops", symmetric=True,
                                                                                  num_edges=r.num_edges)}}
    rep = invariance_report(models, [ref], lambda m: f"layers.{m.max_steps - 1}.hook_update", searches, num=2,
                            max_steps=40, restarts=0)
    assert len(rep.rows) == 2 * 2 * 2
    assert [(e["model"], e["search"]) for e in rep.summary()] == [
        ("relu", "weights"), ("relu", "structure"), ("elu+res", "weights"), ("elu+res", "structure")]
    weights = [r for r in rep.rows if r.search == "weights"]
    assert all(r.jaccard == 1.0 and r.x_dist == 0.0 for r in weights)  # only weights moved
    assert all(0.0 <= r.node_null <= 1.0 and 0.0 <= r.edge_null <= 1.0 for r in rep.rows)
    lines = rep.table().splitlines()
    assert lines[0].split()[:4] == ["model", "search", "conv", "steps"] and len(lines) == 5
    json.dumps(rep.to_dict())
    fig = rep.figure("structure")
    assert len(fig.axes) == 4
    with pytest.raises(ValueError, match="at least one"):
        invariance_report({}, [ref], "layers.0.hook_update", searches)


# ------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "bf.pt"
    torch.manual_seed(0)
    save_checkpoint(path, build_model("bellman_ford", d_hidden=8, max_steps=4, hints=False), "bellman_ford")
    return path


def test_metamer_command_writes_results_that_load_with_weights_only(checkpoint, tmp_path, capsys):
    out = tmp_path / "m"
    main(["metamer", "--checkpoint", str(checkpoint), "--hook", "layers.2.hook_update", "--rounds", "3", "--n", "6",
          "--p", "0.5", "--num", "2", "--max-steps", "60", "--out", str(out), "--no-progress", "--threads", "1"])
    text = capsys.readouterr().out
    assert "bellman_ford: 2 metamers" in text and "wrote" in text
    data = torch.load(out / "metamers.pt", weights_only=True)
    assert data["format"] == "hookgnn-metamers" and len(data["metamers"]) == 2
    ref = data["reference"]
    for m in data["metamers"]:
        assert torch.equal(m["edge_index"], ref["edge_index"]) and torch.equal(m["x"], ref["x"])
        assert bool(((m["edge_attr"] >= 0) & (m["edge_attr"] <= 1)).all())
    rows = json.loads((out / "result.json").read_text())["metamers"]
    assert [r["metamer"] for r in rows] == [0, 1] and all(r["jaccard"] == 1.0 for r in rows)
    assert (out / "figure.png").exists()


def test_metamer_command_with_structure(checkpoint, tmp_path, capsys):
    main(["metamer", "--checkpoint", str(checkpoint), "--hook", "layers.1.hook_update", "--rounds", "2", "--n", "5",
          "--p", "0.5", "--num", "1", "--max-steps", "20", "--structure", "--out", str(tmp_path), "--no-progress"])
    assert "jaccard" in capsys.readouterr().out


@pytest.mark.parametrize(("extra", "match"), [
    (["--hook", "layers.1.hook_updat"], "argument --hook layers.1.hook_updat"),
    (["--hook", "layers.3.hook_update", "--rounds", "2"], "never fired"),
    (["--hook", "layers.1.hook_update", "--tol", "0"], "argument --tol"),
    (["--hook", "layers.1.hook_update", "--num", "0"], "argument --num"),
    (["--hook", "layers.1.hook_update", "--box", "1,0"], "argument --box"),
    (["--hook", "layers.1.hook_update", "--nodes", "sparkly"], "argument --nodes"),
    (["--hook", "layers.1.hook_update", "--edge-attr", "fixed"], "nothing to optimise"),
    (["--hook", "layers.1.hook_message", "--structure"], "node- and graph-axis"),
])
def test_metamer_command_rejects_bad_arguments_before_any_work(checkpoint, tmp_path, capsys, extra, match):
    with pytest.raises(SystemExit) as exit_:
        main(["metamer", "--checkpoint", str(checkpoint), "--n", "5", "--out", str(tmp_path / "o"), *extra])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("hookgnn: error:") and match in err
    assert not (tmp_path / "o" / "metamers.pt").exists()


def test_metamer_command_checks_the_checkpoint_and_the_output_folder(checkpoint, tmp_path, capsys):
    for args, match in ((["--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o")], "--checkpoint"),
                        (["--checkpoint", str(checkpoint), "--out", str(checkpoint)], "--out")):
        with pytest.raises(SystemExit):
            main(["metamer", "--hook", "layers.1.hook_update", *args])
        assert match in capsys.readouterr().err
