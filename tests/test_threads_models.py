"""A user's bare model calls pick threads by workload too (hookgnn.ops.threads.threads_by_inputs):
one thread inside the hooks of a small forward, torch's setting back after (also when a hook
raises), an explicit choice and OMP_NUM_THREADS win, a large graph keeps torch's setting, on
every model class (HookedGNN, from_layers stacks, wrapped PyG models)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from hookgnn import Graph, HookedGNN
from hookgnn.ops.threads import SMALL_WORK, auto_threads, input_rows, model_width, use_threads
from hookgnn.spec import FeatureSpec
from hookgnn.store import ActivationStore

ROOT = Path(__file__).resolve().parents[1]
HOOK = "layers.0.hook_update"


def small_model(d: int = 8) -> HookedGNN:
    torch.manual_seed(0)
    return HookedGNN("mpnn", d, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=2)


def path_graph(n: int) -> Graph:
    torch.manual_seed(1)
    return Graph(x=torch.randn(n, 1), edge_index=torch.stack([torch.arange(n - 1), torch.arange(1, n)]))


def recorder(seen: list[int]):
    def fn(t, hook):
        seen.append(torch.get_num_threads())

    return fn


CALLS = {  # the hook under test is attached before the call, except where the call attaches it
    "forward": lambda m, g, fn: m(g),
    "run_with_hooks": lambda m, g, fn: m.run_with_hooks(g, fwd_hooks=[(HOOK, fn)]),
    "run_with_cache": lambda m, g, fn: m.run_with_cache(g),
    "run_with_cache, grads": lambda m, g, fn: m.run_with_cache(g, grad_metric=lambda out: out["d"].sum()),
    "run_with_cache, disk": lambda m, g, fn: m.run_with_cache(g, device="disk"),
}


@pytest.mark.parametrize("call", list(CALLS))
def test_a_bare_small_call_runs_its_hooks_on_one_thread_and_restores_torchs_setting(call, two_threads):
    model, seen = small_model(), []
    fn = recorder(seen)
    if call != "run_with_hooks":
        model.add_hook(HOOK, fn)
    CALLS[call](model, path_graph(4), fn)
    assert seen == [1]
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("where", ["forward hook", "grad_metric"])
def test_torchs_setting_comes_back_when_a_hook_or_the_metric_raises(where, two_threads):
    model, seen = small_model(), []

    def boom(*args, **kwargs):
        seen.append(torch.get_num_threads())
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        if where == "forward hook":
            model.run_with_hooks(path_graph(4), fwd_hooks=[(HOOK, boom)])
        else:
            model.run_with_cache(path_graph(4), grad_metric=boom)
    assert seen == [1]
    assert torch.get_num_threads() == 2
    assert not model.hook_dict[HOOK].has_hooks  # and no hook leaked
    seen.clear()
    model.add_hook(HOOK, boom)
    with pytest.raises(RuntimeError, match="boom"):
        model(path_graph(4))
    assert seen == [1] and torch.get_num_threads() == 2


def test_an_explicit_choice_wins_and_nested_calls_keep_the_jobs_choice(two_threads):
    model, seen = small_model(), []
    model.add_hook(HOOK, recorder(seen))
    with use_threads(2):
        model(path_graph(4))
        model.run_with_cache(path_graph(4))
    torch.set_num_threads(1)
    with auto_threads(SMALL_WORK * 4, threads=2):
        model.run_with_hooks(path_graph(4))
    assert seen == [2, 2, 2]
    assert torch.get_num_threads() == 1


def test_a_large_graph_keeps_torchs_setting(two_threads):
    model, seen = small_model(), []
    width = model_width(model)
    model.add_hook(HOOK, recorder(seen))
    with torch.no_grad():
        model(path_graph(SMALL_WORK // width + 1))  # (N + E) * d = (2N - 1) * d >= SMALL_WORK
        model(path_graph(SMALL_WORK // (4 * width)))  # < SMALL_WORK / 2
    assert seen == [2, 1]
    assert torch.get_num_threads() == 2


def test_an_activation_store_writes_small_batches_on_one_thread(two_threads, tmp_path):
    model, seen = small_model(), []
    model.add_hook(HOOK, recorder(seen))
    ActivationStore.write(tmp_path / "store", model, [path_graph(4), path_graph(5)], "update")
    assert seen == [1, 1] and torch.get_num_threads() == 2


def test_a_wrapped_pyg_model_called_bare_runs_on_one_thread(two_threads):
    pyg = pytest.importorskip("torch_geometric")
    from hookgnn.interop import from_pyg

    torch.manual_seed(0)
    net = pyg.nn.GCNConv(3, 3)
    x, edge_index = torch.randn(5, 3), torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]])
    hooked, seen = from_pyg(net, example=(x, edge_index)), []
    hooked.add_hook(lambda name: name.endswith("hook_message"), recorder(seen))
    out = hooked(x, edge_index)
    _, cache = hooked.run_with_cache(x, edge_index)
    assert seen == [1, 1] and torch.get_num_threads() == 2
    torch.testing.assert_close(out, net(x, edge_index))  # the PyG original, called directly


def test_input_rows_counts_nodes_and_edges_of_graphs_and_tensors():
    g = path_graph(6)  # 6 nodes, 5 edges
    assert input_rows(((g,), {"steps": 3})) == 11
    assert input_rows(((torch.zeros(6, 4), g.edge_index), {})) == 6 + 5
    assert input_rows(((), {"names_filter": ["a", "b"], "device": None})) == 0


CHILD = """
import torch
from hookgnn import Graph, HookedGNN
torch.set_num_threads(2)
torch.manual_seed(0)
model = HookedGNN("mpnn", 8, node_in=1, max_steps=2)
seen = []
model.add_hook("layers.0.hook_update", lambda t, hook: seen.append(torch.get_num_threads()))
model(Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]])))
print(seen, torch.get_num_threads())
"""


def test_omp_num_threads_set_by_the_user_keeps_torchs_setting():
    """A fresh process started with OMP_NUM_THREADS=2 (without it, the hook sees 1: the tests above)."""
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    with tempfile.TemporaryDirectory() as cwd:
        run = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120,
                             env={**env, "PYTHONPATH": str(ROOT)}, cwd=cwd)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().splitlines()[-1] == "[2] 2"
