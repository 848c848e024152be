"""README comments say what the calls return (the README's code itself runs in tests/test_readme.py)."""

from pathlib import Path

import torch

from hookgnn import Graph, HookedGNN
from hookgnn.metamers.metrics import activation_distance

README = Path(__file__).resolve().parents[1] / "README.md"
#: The metamer block's line on activation_distance, as the README must show it.
DISTANCE_LINE = ('res.converged, activation_distance(model, ref, res.graphs, "layers.2.hook_update")   '
                 '# [3] bools; {hook: [3] distances <= 1e-3}')


def test_readme_says_activation_distance_returns_a_dict_of_distances_per_hook():
    torch.manual_seed(0)
    model = HookedGNN("mpnn", d_hidden=4, node_in=1, max_steps=3)
    ref = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    got = activation_distance(model, ref, Graph.collate([ref, ref, ref]), "layers.2.hook_update")
    assert list(got) == ["layers.2.hook_update"] and got["layers.2.hook_update"].shape == (3,)
    assert float(got["layers.2.hook_update"].abs().max()) == 0.0  # the reference against itself
    assert DISTANCE_LINE in README.read_text(), f"the README's activation_distance line should read:\n{DISTANCE_LINE}"
