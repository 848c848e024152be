"""HookedGNN.for_task builds the model that training builds, sized by the task's own graphs."""

import pytest
import torch

from hookgnn.models import HookedGNN
from hookgnn.tasks import get_task
from hookgnn.training import TrainConfig, train

pytestmark = pytest.mark.usefixtures("one_thread")

CASES = [  # (task, sampler kwargs, TrainConfig / for_task keywords)
    ("bfs", {"p": 0.4}, dict(processor="mpnn")),
    ("bellman_ford", {"p": 0.4}, dict(processor="pgn", encode_hints=True, tie_weights=False)),
    ("dijkstra", {"p": 0.5}, dict(processor="triplet_gmpnn", features=("pi",))),
]


@pytest.mark.parametrize("task, sampler_kwargs, kw", CASES, ids=[c[0] for c in CASES])
def test_for_task_builds_the_model_train_builds_and_runs_on_its_graphs(task, sampler_kwargs, kw):
    seed = 3
    hint_weight = 0.0 if "features" in kw else 1.0  # features=("pi",): outputs only, as train would select
    config = TrainConfig(task=task, d_hidden=8, max_steps=12, sizes=(5,), batch_size=2, steps=0, seed=seed,
                         sampler_kwargs=sampler_kwargs, hint_weight=hint_weight, progress=False, **kw)
    reference, _ = train(config)  # steps=0: the weights train starts from
    torch.manual_seed(seed)
    model = HookedGNN.for_task(task, d_hidden=8, max_steps=12, hints=hint_weight > 0, **kw)

    ref_params = dict(reference.named_parameters())
    params = dict(model.named_parameters())
    assert {k: p.shape for k, p in params.items()} == {k: p.shape for k, p in ref_params.items()}
    for k, p in params.items():  # same seed, same construction order: the same initial weights
        torch.testing.assert_close(p, ref_params[k], rtol=0, atol=0)
    assert (model.output_spec, model.hint_spec) == (reference.output_spec, reference.hint_spec)

    graph = get_task(task).sample(2, "erdos_renyi", seed=0, n=5, **sampler_kwargs)
    assert (model.node_in, model.edge_in) == (graph.x.shape[1], graph.edge_attr.shape[1])  # widths from the data
    out = model.eval()(graph, steps=3)
    ref_out = reference(graph, steps=3)
    wanted = kw.get("features") or [k for k, s in get_task(task).spec.items() if s.stage == "output"]
    assert sorted(out.outputs) == sorted(wanted)
    for name, value in out.outputs.items():
        scale = ref_out[name].abs().max().item() + 1e-6
        torch.testing.assert_close(value, ref_out[name], rtol=1e-5, atol=1e-6 * scale)


def test_for_task_takes_a_task_object_and_names_an_unknown_task():
    torch.manual_seed(0)
    model = HookedGNN.for_task(get_task("bfs"), d_hidden=4, max_steps=2, hints=False)
    assert sorted(model.output_spec) == ["pi", "reach"] and not model.hint_spec
    with pytest.raises(KeyError, match="belman_ford"):
        HookedGNN.for_task("belman_ford", d_hidden=4, max_steps=2)
    with pytest.raises(KeyError, match="no output or hint"):
        HookedGNN.for_task("bfs", d_hidden=4, max_steps=2, features=("nope",))
