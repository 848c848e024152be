"""Offloaded plain attribution runs the source's rounds again one at a time in the backward
(``hookgnn.attribution.source_rounds``): the same rows as keep="all" reduced by hand, with the round
inputs in memory or in the files, and the files hold the source activations of one round at a time."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from handbuilt import no_hooks_left
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from model_zoo import KINDS, case
from strategies import graphs

import hookgnn.attribution.source_rounds as source_rounds
from hookgnn import Graph, HookedGNN
from hookgnn.attribution import attribute
from hookgnn.attribution.checkpointed import checkpoint_reason
from hookgnn.attribution.source_rounds import SourceRounds
from hookgnn.cache.disk import TensorFiles
from hookgnn.metrics import OutputSum
from hookgnn.nn import edge_chunk_size
from hookgnn.spec import FeatureSpec

SPEC = {"d": FeatureSpec("output", "node", "scalar")}


def _by_hand(full: Any, hook: str) -> torch.Tensor:
    """sum_f (a_s - a_b) g per row, in float64, from keep="all"'s delta and grad."""
    p = full.delta[hook].double() * full.grad[hook].double()
    return p.reshape(p.shape[0], math.prod(p.shape[1:])).sum(1)


@pytest.fixture()
def reruns(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The round calls the source run ran again."""
    seen: list[int] = []
    before = SourceRounds.before

    def counted(self: SourceRounds, i: int) -> None:
        seen.append(i)
        before(self, i)

    monkeypatch.setattr(SourceRounds, "before", counted)
    return seen


@pytest.mark.parametrize("spill_bytes", [0, 1 << 40], ids=["inputs-in-files", "inputs-in-memory"])
@pytest.mark.parametrize("processor", ["mpnn", "triplet_gmpnn"])
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(g=graphs(max_nodes=7, max_edges=16, node_features=2, edge_features=1), seed=st.integers(0, 3),
       chunk=st.sampled_from([0, 3]))
def test_rounds_run_again_give_the_rows_of_keep_all_by_hand(
    processor: str, spill_bytes: int, g: Graph, seed: int, chunk: int, tmp_path: Path, reruns: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(source_rounds, "SPILL_BYTES", spill_bytes)
    torch.manual_seed(seed)
    model = HookedGNN(processor, d_hidden=4, node_in=2, edge_in=1, spec=SPEC, max_steps=3)
    corr = g.replace(x=torch.randn(g.x.shape), edge_attr=torch.rand(g.edge_attr.shape))
    metric = OutputSum("d")
    full = attribute(model, g, corr, metric)
    del reruns[:]
    with edge_chunk_size(chunk):  # 3: the message MLP's hidden layer in edge chunks, its hooks called per chunk
        got = attribute(model, g, corr, metric, keep="rows", offload=tmp_path / "spill")
    assert sorted(set(reruns)) == list(range(model.num_rounds))  # every round's source ran again
    assert list(got.by_row) == list(full.axes)
    for hook in full.axes:
        want = _by_hand(full, hook)
        scale = 1.0 + float((full.delta[hook].double().abs() * full.grad[hook].double().abs()).sum())
        torch.testing.assert_close(got.by_row[hook].double(), want, rtol=1e-5, atol=1e-5 * scale)
    assert not any((tmp_path / "spill").iterdir())
    assert no_hooks_left(model) and not any("forward" in m.__dict__ for m in model.modules())


def test_the_files_hold_one_rounds_source_activations_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = HookedGNN("mpnn", d_hidden=8, node_in=2, edge_in=1, spec=SPEC, max_steps=4)
    g = Graph(x=torch.randn(30, 2), edge_index=torch.randint(0, 30, (2, 90)), edge_attr=torch.rand(90, 1))
    corr = g.replace(x=torch.randn(30, 2))
    held: dict[str, int] = {}
    most = [0]
    write, zeros, remove = TensorFiles.write, TensorFiles.zeros, TensorFiles.remove

    def track(name: str, size: int | None) -> None:
        if name.startswith("source:"):
            held.pop(name, None) if size is None else held.__setitem__(name, size)
            most[0] = max(most[0], sum(held.values()))

    def tracked_write(self: TensorFiles, name: str, t: torch.Tensor) -> None:
        write(self, name, t)
        track(name, t.numel() * t.element_size())

    def tracked_zeros(self: TensorFiles, name: str, shape: Any, dtype: torch.dtype) -> None:
        zeros(self, name, shape, dtype)
        track(name, math.prod(shape) * torch.empty(0, dtype=dtype).element_size())

    def tracked_remove(self: TensorFiles, name: str) -> None:
        remove(self, name)
        track(name, None)

    monkeypatch.setattr(TensorFiles, "write", tracked_write)
    monkeypatch.setattr(TensorFiles, "zeros", tracked_zeros)
    monkeypatch.setattr(TensorFiles, "remove", tracked_remove)
    attribute(model, g, corr, OutputSum("d"), keep="rows", offload=tmp_path)
    # the reference: the source run's activations from a plain cache, summed per round (outside rounds: -1)
    _, cache = model.run_with_cache(corr)
    per_round: dict[int, int] = {}
    for name, act in cache.items():
        t = model.round_places[name][0] if name in model.round_places else -1
        per_round[t] = per_round.get(t, 0) + act.numel() * act.element_size()
    assert 0 < most[0] <= max(per_round.values())
    assert most[0] < sum(v for t, v in per_round.items() if t >= 0)  # less than every round's at once
    assert not held


def test_an_input_edited_in_place_after_the_source_forward_raises(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = HookedGNN("mpnn", d_hidden=4, node_in=2, max_steps=2)
    g = Graph(x=torch.randn(4, 2), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]))
    files = TensorFiles(within=tmp_path)
    rounds = SourceRounds(model, {"layers.1.hook_message"}, files)
    rounds.run(g, ["layers.1.hook_message"], {})
    g.edge_index.add_(0)  # (an in-place edit: the tensor's version moves on, its values do not)
    with pytest.raises(ValueError, match="round call 1 .* edited in place"):
        rounds.before(1)
    files.close()


def test_a_gradient_whose_round_never_ran_again_raises(tmp_path: Path) -> None:
    model = HookedGNN("mpnn", d_hidden=4, node_in=2, max_steps=2)
    rounds = SourceRounds(model, {"layers.0.hook_message"}, TensorFiles(within=tmp_path))
    assert rounds.waits("layers.0.hook_message") and not rounds.waits("layers.0.hook_update")
    done: list[int] = []
    rounds.hold("layers.0.hook_message", lambda: done.append(1))
    with pytest.raises(RuntimeError, match="layers.0.hook_message: its gradient came but its round was not recomputed"):
        rounds.finish()
    rounds.made("layers.0.hook_message")
    assert done == [1] and not rounds.waits("layers.0.hook_message")
    rounds.finish()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_model_kind_gives_the_rows_of_keep_all_offloaded(kind: str, tmp_path: Path, reruns: list[int]) -> None:
    """Every kind of the zoo: checkpointable ones run the source's rounds again (wrapped PyG models keep the
    spilled source run); either way the rows are keep="all"'s, by hand."""
    c = case(kind)
    want = attribute(c.model, c.clean, c.corrupted, c.metric, keep="all")
    del reruns[:]
    got = attribute(c.model, c.clean, c.corrupted, c.metric, keep="rows", offload=tmp_path)
    assert bool(reruns) == (not checkpoint_reason(c.model)), reruns
    assert list(got.by_row) == list(want.delta)
    for hook in want.delta:
        product = (want.delta[hook] * want.grad[hook]).double()
        by_hand = product.reshape(product.shape[0], -1).sum(1) if product.dim() else product
        scale = float(by_hand.abs().max()) if by_hand.numel() else 1.0
        torch.testing.assert_close(got.by_row[hook].double(), by_hand, rtol=1e-4, atol=1e-5 * max(scale, 1e-3))
    assert not any(tmp_path.iterdir()) and no_hooks_left(c.model)
