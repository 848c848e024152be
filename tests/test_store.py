"""ActivationStore: activations of many graphs on disk, keyed by (graph, round, item), with hint labels."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from hookgnn import Field, Graph, HookedGNN
from hookgnn.outpaths import OutputPathError
from hookgnn.store import ActivationStore
from hookgnn.tasks import get_task

TASK = get_task("bfs")


def _model() -> HookedGNN:
    torch.manual_seed(0)
    return HookedGNN("mpnn", 6, node_in=2, edge_in=1, spec=TASK.spec, max_steps=4)


def _shuffled_edges(g: Graph) -> Graph:
    """The same batch with its edges (and edge fields) in a random order: not grouped by graph."""
    perm = torch.randperm(g.num_edges, generator=torch.Generator().manual_seed(5))
    fields = {k: Field(f.value.index_select(f.item_dim, perm), f.location, f.time) if f.location == "edge" else f
              for k, f in g.fields.items()}
    return Graph(x=g.x, edge_index=g.edge_index[:, perm], edge_attr=g.edge_attr[perm], ptr=g.ptr, fields=fields)


def test_rows_and_labels_are_those_of_each_graph_run_alone(tmp_path: Path) -> None:
    model = _model()
    batches = [TASK.sample(2, "erdos_renyi", seed=s, n=5, p=0.5) for s in range(2)]
    batches.append(_shuffled_edges(TASK.sample(3, "erdos_renyi", seed=7, n=4, p=0.6)))
    store = ActivationStore.write(tmp_path / "s", model, batches, lambda n: n.endswith(("hook_update", "hook_message")),
                                  labels=["reach_h", "pi_h", "pi"], steps=3)
    store = ActivationStore(tmp_path / "s")  # reopened from disk
    singles = [g for b in batches for g in b.split()]
    assert store.num_graphs == len(singles) == 7
    for i, g in enumerate(singles):
        _, cache = model.run_with_cache(g, steps=3)
        for hook in store.hooks:
            # (a batched matmul may round differently from a single graph's: tolerance, not equality)
            torch.testing.assert_close(store.graph_rows(hook, i), cache[hook], rtol=1e-6, atol=1e-6, msg=hook)
    # Edges over the stored node rows, in the order of the edge rows and edge labels (a shuffled batch included).
    offsets = torch.tensor([0] + [g.num_nodes for g in singles[:-1]]).cumsum(0).tolist()
    assert torch.equal(store.edge_index(), torch.cat([g.edge_index + o for g, o in zip(singles, offsets)], 1))
    assert torch.equal(store.node_graph(), torch.cat([torch.full((g.num_nodes,), i) for i, g in enumerate(singles)]))
    assert torch.equal(store.label_at("pi_h", 1), torch.cat([g["pi_h"][min(1, g["pi_h"].shape[0] - 1)] for g in singles]))
    keys = store.keys("layers.1.hook_message")
    assert keys[:, 1].eq(1).all() and keys[:, 0].tolist() == sorted(keys[:, 0].tolist())
    row = int((keys[:, 0] == 6).nonzero()[2])  # graph 6, its edge 2
    torch.testing.assert_close(store.activations("layers.1.hook_message")[row],
                               model.run_with_cache(singles[6], steps=3)[1]["layers.1.hook_message"][2])
    # Labels: hint step t + 1 for round t, clipped to the graph's last step.
    x, y, k = store.probe_data("update", "reach_h")
    for (graph, t, node), label in zip(k.tolist(), y.tolist()):
        hint = singles[graph]["reach_h"]
        assert label == hint[min(t + 1, hint.shape[0] - 1), node]
    assert torch.equal(store.label_at("pi"), torch.cat([g["pi"] for g in singles]))
    x, y, k = store.probe_data("message", "pi_h")  # an edge hint
    graph, t, edge = k[-1].tolist()
    assert y[-1] == singles[graph]["pi_h"][min(t + 1, singles[graph]["pi_h"].shape[0] - 1), edge]


def test_an_existing_store_or_a_bad_folder_fails_before_any_forward(tmp_path: Path) -> None:
    model = _model()
    calls: list[int] = []
    model.add_hook("hook_node_embed", lambda t, hook: calls.append(1), is_permanent=True)
    graphs = [TASK.sample(1, "path", seed=0, n=4)]
    ActivationStore.write(tmp_path / "s", model, graphs, "update")
    n = len(calls)
    with pytest.raises(OutputPathError, match="already holds an activation store"):
        ActivationStore.write(tmp_path / "s", model, graphs, "update")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputPathError, match="is a file"):
        ActivationStore.write(tmp_path / "file" / "s", model, graphs, "update")
    with pytest.raises(KeyError, match="no field \\['nope'\\]"):
        ActivationStore.write(tmp_path / "t", model, graphs, "update", labels=["nope"])
    assert len(calls) == n
    again = ActivationStore.write(tmp_path / "s", model, graphs, "update", overwrite=True)
    assert again.num_graphs == 1


def test_triplet_hooks_and_unknown_names_are_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = HookedGNN("triplet_gmpnn", 6, node_in=2, edge_in=1, spec=TASK.spec, max_steps=2)
    with pytest.raises(ValueError, match="node-, edge- and graph-axis"):
        ActivationStore.write(tmp_path, model, [TASK.sample(1, "path", seed=0, n=4)], "hook_triplet")
    store = ActivationStore.write(tmp_path / "ok", model, [TASK.sample(1, "path", seed=0, n=4)], "update")
    with pytest.raises(KeyError, match="not in the store"):
        store.activations("layers.0.hook_message")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (a device that is always full)")
def test_a_full_disk_fails_loudly_instead_of_storing_garbage(tmp_path: Path) -> None:
    """The first hook file is /dev/full (linked there by a hook, once the store has cleared its folder): the
    write raises ENOSPC naming that file, and no store.json is left that would open an incomplete store (small
    appends used to fail unseen)."""
    import errno

    model = _model()

    def fill_the_disk(t: torch.Tensor, hook: object) -> None:
        target = tmp_path / "hooks" / "000.bin"
        if not target.is_symlink():
            target.symlink_to("/dev/full")

    model.add_hook("hook_node_embed", fill_the_disk, is_permanent=True)
    graphs = [TASK.sample(1, "path", seed=0, n=4)]
    with pytest.raises(OSError, match="000.bin") as raised:
        ActivationStore.write(tmp_path, model, graphs, "update")
    assert raised.value.errno == errno.ENOSPC
    assert not (tmp_path / "store.json").exists()
