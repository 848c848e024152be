"""hookgnn.causal probes: closed-form ridge, logistic and pointer probes, and the probe table."""

from __future__ import annotations

import json
import math

import matplotlib
import numpy as np
import pytest
import torch

import handbuilt
from hookgnn.causal import fit_probe, probe_hints, probe_score, untrained_like
from hookgnn.tasks import get_task

matplotlib.use("Agg")
BF = get_task("bellman_ford")


def test_scalar_probe_is_the_ridge_solution_on_standardised_states():
    torch.manual_seed(0)
    x = torch.randn(50, 4, dtype=torch.float64) * torch.tensor([1.0, 10.0, 0.1, 3.0], dtype=torch.float64) + 2
    y = x @ torch.tensor([1.0, -0.2, 5.0, 0.0], dtype=torch.float64) + 0.3 * torch.randn(50, dtype=torch.float64)
    lam = 0.1
    xs = x.numpy()
    z = (xs - xs.mean(0)) / xs.std(0)
    z1 = np.hstack([z, np.ones((50, 1))])
    reg = lam * 50 * np.eye(5)
    reg[4, 4] = 0
    coef = np.linalg.solve(z1.T @ z1 + reg, z1.T @ y.numpy())
    probe = fit_probe("scalar", x, y, ridge=lam)
    want = z1 @ coef
    assert np.allclose(probe.scores(x, None).numpy(), want, rtol=1e-8, atol=1e-8 * np.abs(want).max())
    r2 = 1 - ((y.numpy() - want) ** 2).sum() / ((y.numpy() - y.numpy().mean()) ** 2).sum()
    assert math.isclose(probe_score(probe, x, y, None), r2, rel_tol=1e-9)


def test_mask_probe_separates_a_linearly_separable_mask_and_its_direction_points_along_it():
    torch.manual_seed(1)
    x = torch.randn(200, 3)
    y = (x[:, 1] - 0.5 > 0).float()
    probe = fit_probe("mask", x[:150], y[:150], ridge=1e-3)
    assert probe_score(probe, x[150:], y[150:], None) >= 0.95
    direction = probe.direction[0] / probe.direction[0].norm()
    assert float(direction[1].abs()) > 0.9


def test_pointer_probe_finds_the_in_neighbour_with_the_largest_first_channel():
    torch.manual_seed(2)
    n = 60
    x = torch.randn(n, 3)
    src = torch.randint(0, n, (240,))
    dst = torch.randint(0, n, (240,))
    ei = torch.cat([torch.stack([torch.arange(n), torch.arange(n)]), torch.stack([src, dst])], 1)
    score = x[ei[0], 0]
    best = torch.full((n,), -torch.inf).scatter_reduce(0, ei[1], score, "amax")
    y = (score == best[ei[1]]).float()
    probe = fit_probe("pointer", x, y, ei, ridge=1e-5, iters=100)
    assert probe_score(probe, x, y, ei) >= 0.95


def test_probe_table_on_the_hand_built_network_decodes_the_reached_mask():
    graphs = [BF.sample(6, "erdos_renyi", seed=s, n=7, p=0.4) for s in range(2)]
    model = handbuilt.build(3, node_in=2)
    result = probe_hints(model, graphs, BF.spec, hints=["msk", "d_h"], baseline=untrained_like(model, 0))
    rows = {(r["hint"], r["step"]): r for r in result.rows}
    assert sorted(rows) == sorted((h, k) for h in ("msk", "d_h") for k in (1, 2, 3))
    total = sum(g.num_nodes for g in graphs)
    for r in result.rows:
        assert r["n_train"] + r["n_test"] == total
        assert not math.isnan(r["baseline"])
        assert r["selectivity"] == r["score"] - r["control"]
    for k in (1, 2, 3):
        assert rows[("msk", k)]["score"] == 1.0  # reached <=> channel 0 below B: one threshold
        assert rows[("msk", k)]["control"] < 1.0
    hints, steps, m = result.matrix("selectivity")
    assert hints == ["msk", "d_h"] and steps == [1, 2, 3] and m.shape == (2, 3)
    assert "selectivity" in result.table().splitlines()[0]
    from hookgnn.viz import plot_probes
    assert len(plot_probes(result).axes) == 3  # score, control and the colour bar


def test_probe_hints_names_bad_hints_and_splits():
    graphs = [BF.sample(2, "erdos_renyi", seed=0, n=5, p=0.4)]
    model = handbuilt.build(2, node_in=2)
    with pytest.raises(KeyError, match="'w' is not a node hint"):
        probe_hints(model, graphs, BF.spec, hints=["w"])
    with pytest.raises(ValueError, match="test_fraction must lie in"):
        probe_hints(model, graphs, BF.spec, test_fraction=1.0)
    with pytest.raises(ValueError, match="no probe for hints of type 'mask_two'"):
        fit_probe("mask_two", torch.zeros(3, 2), torch.zeros(3))


def test_probes_from_a_store_equal_probes_from_memory_pointer_hints_included(tmp_path):
    from hookgnn import HookedGNN
    from hookgnn.store import ActivationStore
    bfs = get_task("bfs")
    torch.manual_seed(3)
    model = HookedGNN("mpnn", 6, node_in=2, edge_in=1, spec=bfs.spec, max_steps=2)
    base = untrained_like(model, 1)
    graphs = [bfs.sample(3, "erdos_renyi", seed=s, n=5, p=0.5) for s in range(2)]
    names = [model.state_hook(k) for k in (1, 2)]
    store = ActivationStore.write(tmp_path / "m", model, graphs, names, labels=["reach_h", "pi_h"])
    base_store = ActivationStore.write(tmp_path / "b", base, graphs, names, labels=["reach_h", "pi_h"])
    want = probe_hints(model, graphs, bfs.spec, baseline=base, seed=4)
    got = probe_hints(model, store, bfs.spec, baseline=base_store, seed=4)
    assert [r["hint"] for r in got.rows].count("pi_h") == 2
    assert got.rows == want.rows  # the same numbers, exactly: the stored rows are the forward's values
    for key, probe in want.probes.items():
        assert all(torch.equal(probe.params[p], got.probes[key].params[p]) for p in probe.params)
    offsets = torch.tensor([0] + [g.num_nodes for g in graphs[:-1]]).cumsum(0)
    edges = torch.cat([g.edge_index + o for g, o in zip(graphs, offsets)], 1)
    assert torch.equal(store.edge_index(), edges)  # independent: the batches' own edges, offset by hand


def test_probes_from_a_store_name_a_missing_hook_point_label_or_hint(tmp_path):
    from hookgnn import HookedGNN
    from hookgnn.store import ActivationStore
    bfs = get_task("bfs")
    torch.manual_seed(5)
    model = HookedGNN("mpnn", 4, node_in=2, edge_in=1, spec=bfs.spec, max_steps=2)
    graphs = [bfs.sample(2, "path", seed=0, n=4)]
    store = ActivationStore.write(tmp_path, model, graphs, [model.state_hook(1)], labels=["reach_h"])
    with pytest.raises(KeyError, match=f"no hook point '{model.state_hook(2)}'"):
        probe_hints(model, store, bfs.spec, hints=["reach_h"])
    with pytest.raises(KeyError, match=r"no label \['pi_h'\]"):
        probe_hints(model, store, bfs.spec, hints=["pi_h"], steps=[1])
    with pytest.raises(KeyError, match="'d_h' is not a node hint"):
        probe_hints(model, store, bfs.spec, hints=["d_h"], steps=[1])
    with pytest.raises(ValueError, match="forward keywords"):
        probe_hints(model, store, bfs.spec, steps=[1], hints=["reach_h"], steps_=3)
    with pytest.raises(TypeError, match="baseline must be a store"):
        probe_hints(model, store, bfs.spec, hints=["reach_h"], steps=[1], baseline=model)
    # a store written before stores kept edges: mask probes still run, pointer probes say what is missing
    old = ActivationStore.write(tmp_path / "old", model, graphs, [model.state_hook(1)], labels=["reach_h", "pi_h"])
    meta = json.loads((old.folder / "store.json").read_text())
    del meta["edges"]
    (old.folder / "store.json").write_text(json.dumps(meta))
    old = ActivationStore(old.folder)
    assert probe_hints(model, old, bfs.spec, hints=["reach_h"], steps=[1], test_fraction=0.5).rows
    with pytest.raises(ValueError, match="written without edge indices"):
        probe_hints(model, old, bfs.spec, hints=["pi_h"], steps=[1])
