"""Attribution that keeps only products (keep=entries/rows/features, offload): the numbers of keep='all'.

keep='all' takes every gradient with one ``torch.autograd.grad`` over all activations;
the streamed path takes each through a tap during the backward, with the parameters
frozen and the differences made in the forward, so the two are independent computations.
Exactness against patching itself: a linear model, where attribution is exact.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from handbuilt import no_hooks_left
from test_attribution import SPEC, LinearSum, _graphs

from hookgnn import HookedGNN
from hookgnn.attribution import attribute
from hookgnn.attribution.streamed import check_keep
from hookgnn.cache.grad_taps import GradientTaps, frozen_parameters
from hookgnn.metrics import OutputSum
from hookgnn.outpaths import OutputPathError
from hookgnn.patching import hooks, patch, round_hooks

KEEPS = ("entries", "rows", "features")


#: What each keep fills, and how the same numbers are derived from a keep="all" result.
FILLED = {"entries": ("by_entry",), "rows": ("by_row", "by_feature"), "features": ("by_feature",)}


def _reduced(attr, hook: str, field: str) -> torch.Tensor:  # noqa: ANN001
    return {"by_entry": attr.entries, "by_row": attr.row_sums, "by_feature": attr.feature_sums}[field](hook)


@pytest.mark.parametrize("processor", ["mpnn", "gat", "minagg", "triplet_gmpnn"])
@pytest.mark.parametrize("ig_steps", [0, 3])
def test_kept_products_equal_those_of_keep_all(processor: str, ig_steps: int, tmp_path: Path) -> None:
    torch.manual_seed(4)
    model = HookedGNN(processor, d_hidden=6, node_in=2, edge_in=1, spec=SPEC, max_steps=2)
    g, corr = _graphs(4)
    metric = OutputSum("d")
    full = attribute(model, g, corr, metric, ig_steps=ig_steps, chunk=2)
    for keep in KEEPS:
        for offload in (None, tmp_path / "spill"):
            got = attribute(model, g, corr, metric, ig_steps=ig_steps, keep=keep, offload=offload, chunk=2)
            assert list(got.axes.items()) == list(full.axes.items()) and got.keep == keep
            assert got.baseline == pytest.approx(full.baseline, rel=1e-6, abs=1e-6)
            for field in ("by_entry", "by_row", "by_feature"):
                assert bool(getattr(got, field)) == (field in FILLED[keep]), (keep, field)
            assert not (got.delta or got.grad or got.grad_active or got.grad_through)
            for field in FILLED[keep]:
                for hook in full.axes:
                    torch.testing.assert_close(getattr(got, field)[hook], _reduced(full, hook, field), rtol=1e-5,
                                               atol=1e-6, msg=f"{keep} {field} {hook}")
            assert got.total() == pytest.approx(full.total(), rel=1e-4, abs=1e-6)
    assert not any((tmp_path / "spill").iterdir())  # every temporary file removed
    assert no_hooks_left(model)
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


@pytest.mark.parametrize("keep", ["rows", "entries"])
def test_kept_rows_equal_exact_patching_on_a_linear_model(keep: str) -> None:
    torch.manual_seed(1)
    model = HookedGNN(LinearSum, d_hidden=5, node_in=2, edge_in=1, spec=SPEC, max_steps=3, tie_weights=False)
    g, corr = _graphs()
    names = round_hooks(model, "message")
    exact = patch(model, g, corr, OutputSum("d"), hooks(model, names))
    attr = attribute(model, g, corr, OutputSum("d"), keep=keep, names_filter=names)
    torch.testing.assert_close(attr.rows(names).values, exact.values, atol=1e-4, rtol=1e-4)
    assert attr.baseline == pytest.approx(exact.baseline, rel=1e-6, abs=1e-6)


def test_a_pyg_model_calling_one_conv_twice() -> None:
    pyg = pytest.importorskip("torch_geometric.nn")  # noqa: F841
    from test_interop_patching import Net, _pair

    from hookgnn.interop import from_pyg
    from hookgnn.metrics.per_graph import from_loss

    torch.manual_seed(0)
    clean, corrupted = _pair()
    model = from_pyg(Net().eval(), example=clean)
    metric = from_loss(torch.nn.functional.mse_loss, target="y")
    full = attribute(model, clean, corrupted, metric)
    got = attribute(model, clean, corrupted, metric, keep="rows")
    for hook in full.axes:
        torch.testing.assert_close(got.by_row[hook], full.row_sums(hook), rtol=1e-5, atol=1e-6)


def test_what_a_kept_attribution_lacks_is_named() -> None:
    model = HookedGNN("mpnn", d_hidden=4, node_in=2, edge_in=1, spec=SPEC, max_steps=2)
    g, corr = _graphs()
    features = attribute(model, g, corr, OutputSum("d"), keep="features")
    with pytest.raises(ValueError, match="keep='features', which keeps no row sums"):
        features.rows(["layers.0.hook_update"])
    with pytest.raises(ValueError, match="keep='features', which keeps no entries"):
        features.entries("layers.0.hook_update")
    rows = attribute(model, g, corr, OutputSum("d"), keep="rows")
    with pytest.raises(ValueError, match="keep='rows', which keeps no entries; rerun it with keep='all' or 'entries'"):
        rows.entries("layers.0.hook_update")
    assert rows.features(["layers.0.hook_update"]).axes == ("round", "feature")  # rows keep feature sums too
    with pytest.raises(ValueError, match="keep must be one of"):
        check_keep("row", None)  # (a call with keep="row" is refused by the type checker first in the tests)
    with pytest.raises(ValueError, match="offload= needs keep"):
        attribute(model, g, corr, OutputSum("d"), offload="/tmp")


def test_an_offload_folder_that_cannot_be_written_fails_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    model = HookedGNN("mpnn", d_hidden=4, node_in=2, edge_in=1, spec=SPEC, max_steps=2)
    g, corr = _graphs()
    calls = []
    model.add_hook("hook_node_embed", lambda t, hook: calls.append(1), is_permanent=True)
    with pytest.raises(OutputPathError, match="is a file"):
        attribute(model, g, corr, OutputSum("d"), keep="rows", offload=blocker / "spill")
    assert calls == []


def test_hooks_and_parameters_restored_when_the_metric_raises() -> None:
    model = HookedGNN("mpnn", d_hidden=4, node_in=2, edge_in=1, spec=SPEC, max_steps=2)
    g, corr = _graphs()

    def broken(out, graph):  # noqa: ANN001, ANN202
        raise RuntimeError("metric failed")

    with pytest.raises(RuntimeError, match="metric failed"):
        attribute(model, g, corr, broken, keep="entries")
    assert no_hooks_left(model)
    assert all(p.requires_grad for p in model.parameters())


def test_taps_give_the_gradients_of_autograd_and_leave_parameters_alone() -> None:
    lin = torch.nn.Linear(3, 3)
    x = torch.randn(4, 3)
    a = lin(x)
    b = torch.tanh(a) @ lin.weight
    want = torch.autograd.grad((b ** 2).sum() + a.sum(), [a, b])
    seen: dict[str, torch.Tensor] = {}
    taps = GradientTaps()
    with frozen_parameters(lin):
        a2 = taps.tap(lin(x), lambda grad: seen.__setitem__("a", grad))
        b2 = taps.tap(torch.tanh(a2) @ lin.weight, lambda grad: seen.__setitem__("b", grad))
        taps.backward((b2 ** 2).sum() + a2.sum())
    torch.testing.assert_close(seen["a"], want[0])
    torch.testing.assert_close(seen["b"], want[1])
    assert lin.weight.grad is None and lin.weight.requires_grad
    with pytest.raises(ValueError, match="does not depend"):
        GradientTaps().backward(torch.ones(()))
