"""Per-round checkpointed attribution (``attribute(keep != "all", offload=...)``): the rows of the
un-checkpointed path and of keep="all" reduced by hand, the autograd graph of one round at a time."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from handbuilt import no_hooks_left
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import graphs

import hookgnn.attribution.streamed as streamed
from hookgnn import Graph, HookedGNN, HookedRootModule, HookPoint
from hookgnn.models.base import LayerStack, ModelOutput
from hookgnn.attribution import attribute
from hookgnn.attribution.checkpointed import checkpoint_reason, checkpointed_run
from hookgnn.metrics import OutputSum
from hookgnn.nn import MPNN
from hookgnn.spec import FeatureSpec

SPEC = {"d": FeatureSpec("output", "node", "scalar")}


def _by_hand(full: Any, hook: str) -> torch.Tensor:
    """sum_f (a_s - a_b) g per row, in float64, from keep="all"'s delta and grad."""
    p = full.delta[hook].double() * full.grad[hook].double()
    return p.reshape(p.shape[0], math.prod(p.shape[1:])).sum(1)


def _close(got: torch.Tensor, want: torch.Tensor, scale: float) -> None:
    torch.testing.assert_close(got.double(), want.double(), rtol=1e-5, atol=1e-5 * scale)


@pytest.fixture()
def spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the runs that took the checkpointed path."""
    calls: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> torch.Tensor:
        calls.append(1)
        return checkpointed_run(*args, **kwargs)

    monkeypatch.setattr(streamed, "checkpointed_run", counted)
    return calls


@pytest.mark.parametrize("processor", ["mpnn", "gat", "triplet_gmpnn"])
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(g=graphs(max_nodes=7, max_edges=16, node_features=2, edge_features=1), ig_steps=st.sampled_from([0, 2]),
       seed=st.integers(0, 3))
def test_checkpointed_rows_equal_the_unchecked_rows_and_keep_all_by_hand(
    processor: str, g: Graph, ig_steps: int, seed: int, tmp_path: Path, spy: list[int]
) -> None:
    torch.manual_seed(seed)
    model = HookedGNN(processor, d_hidden=4, node_in=2, edge_in=1, spec=SPEC, max_steps=3)
    corr = g.replace(x=torch.randn(g.x.shape), edge_attr=torch.rand(g.edge_attr.shape))
    metric = OutputSum("d")
    full = attribute(model, g, corr, metric, ig_steps=ig_steps, chunk=2)
    plain = attribute(model, g, corr, metric, ig_steps=ig_steps, keep="rows", chunk=2)
    before = len(spy)
    got = attribute(model, g, corr, metric, ig_steps=ig_steps, keep="rows", chunk=2, offload=tmp_path / "spill")
    assert len(spy) > before  # the checkpointed path ran
    assert list(got.by_row) == list(full.axes)
    for hook in full.axes:
        want = _by_hand(full, hook)
        scale = 1.0 + float((full.delta[hook].double().abs() * full.grad[hook].double().abs()).sum())
        _close(got.by_row[hook], want, scale)
        _close(got.by_row[hook], plain.by_row[hook], scale)
        _close(got.by_feature[hook], plain.by_feature[hook], scale)
    assert got.baseline == pytest.approx(full.baseline, rel=1e-6, abs=1e-6)
    assert not any((tmp_path / "spill").iterdir())
    assert no_hooks_left(model) and not any("forward" in m.__dict__ for m in model.modules())
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_a_from_layers_stack_is_checkpointed_and_exact(tmp_path: Path, spy: list[int]) -> None:
    from model_zoo import layers_minar

    case = layers_minar()
    assert checkpoint_reason(case.model) == ""
    full = attribute(case.model, case.clean, case.corrupted, case.metric)
    got = attribute(case.model, case.clean, case.corrupted, case.metric, keep="rows", offload=tmp_path)
    assert spy
    for hook in full.axes:
        _close(got.by_row[hook], _by_hand(full, hook), 1.0)


def test_a_pyg_model_is_not_checkpointed_and_says_why(tmp_path: Path, spy: list[int]) -> None:
    pytest.importorskip("torch_geometric.nn")
    from model_zoo import wrapped

    case = wrapped("gine")
    reason = checkpoint_reason(case.model)
    assert reason.startswith("PyGModel: hook point") and "is not a module inside round_module(0)" in reason
    full = attribute(case.model, case.clean, case.corrupted, case.metric)
    got = attribute(case.model, case.clean, case.corrupted, case.metric, keep="rows", offload=tmp_path)
    assert not spy  # today's path: exact, without the memory bound
    for hook in full.axes:
        _close(got.by_row[hook], _by_hand(full, hook), 1.0)
    with pytest.raises(TypeError, match="per-round checkpointing is not possible: .*round_module"):
        checkpointed_run(case.model, case.clean, 1, case.metric, list(full.axes), {}, None, lambda n, g: None)


class _NoRoundModule(HookedRootModule):
    """Reports a round but does not say which module runs it."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(1, 1)
        self.hook_h = HookPoint("node")
        self.setup()

    def find_rounds(self) -> dict[str, tuple[int, str]]:
        return {"hook_h": (0, "hook_h")}

    def forward(self, graph: Graph) -> torch.Tensor:
        return self.hook_h(self.lin(graph.x))


def test_a_model_with_rounds_but_no_round_module_raises_naming_both(tmp_path: Path) -> None:
    model = _NoRoundModule()
    g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    metric = lambda out, graph: out.sum().reshape(1)  # noqa: E731
    attribute(model, g, g.replace(x=torch.randn(3, 1)), metric, keep="rows")  # no offload: today's path
    with pytest.raises(TypeError, match="_NoRoundModule reports 1 rounds but does not define round_module"):
        attribute(model, g, g.replace(x=torch.randn(3, 1)), metric, keep="rows", offload=tmp_path)
    assert no_hooks_left(model)


class _Unsteady(MPNN):
    """An MPNN round whose extra hook point fires on its first two calls only (state kept between calls)."""

    def __init__(self, d: int) -> None:
        super().__init__(d)
        self.hook_extra = HookPoint("node")
        self.calls = 0

    def update(self, aggr: torch.Tensor, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = super().update(aggr, h, x)
        return self.hook_extra(out) if self.calls <= 2 else out  # the source run, the base run, not again


def test_a_round_that_differs_when_recomputed_raises_and_leaves_nothing_behind(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = HookedGNN(_Unsteady, 4, node_in=2, edge_in=1, spec=SPEC, max_steps=1)
    g = Graph(x=torch.rand(4, 2), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]), edge_attr=torch.rand(3, 1))
    with pytest.raises(RuntimeError, match="recomputing a round in the backward did not fire .*'layers.0.hook_extra'"):
        attribute(model, g, g.replace(x=torch.rand(4, 2)), OutputSum("d"), keep="rows", offload=tmp_path)
    assert no_hooks_left(model) and not any("forward" in m.__dict__ for m in model.modules())
    assert all(p.requires_grad for p in model.parameters())
    assert not any(tmp_path.iterdir())


def _saved_bytes(run: Any) -> int:
    """The most bytes of distinct tensors that autograd held for the backward at once, outside checkpoints."""
    live: dict[int, int] = {}
    count: dict[int, int] = {}
    peak = [0]

    class Held:
        def __init__(self, t: torch.Tensor) -> None:
            self.t, self.key = t, t.untyped_storage().data_ptr()
            count[self.key] = count.get(self.key, 0) + 1
            live[self.key] = t.untyped_storage().nbytes()
            peak[0] = max(peak[0], sum(live.values()))

        def __del__(self) -> None:
            count[self.key] -= 1
            if not count[self.key]:
                live.pop(self.key, None)

    with torch.autograd.graph.saved_tensors_hooks(Held, lambda h: h.t):
        run()
    return peak[0]


def test_checkpointing_holds_the_node_states_not_every_rounds_graph(tmp_path: Path) -> None:
    n, e, d = 40, 400, 8
    torch.manual_seed(0)
    g = Graph(x=torch.rand(n, 2), edge_index=torch.randint(0, n, (2, e)), edge_attr=torch.rand(e, 1))
    corr = g.replace(x=torch.rand(n, 2))
    held = {}
    for rounds in (2, 8):
        torch.manual_seed(0)
        model = HookedGNN("mpnn", d, node_in=2, edge_in=1, spec=SPEC, max_steps=rounds)
        for offload in (None, tmp_path):
            held[rounds, offload is not None] = _saved_bytes(
                lambda: attribute(model, g, corr, OutputSum("d"), keep="rows", offload=offload))
    per_round_plain = (held[8, False] - held[2, False]) / 6
    per_round_ckpt = (held[8, True] - held[2, True]) / 6
    edge_tensor, node_state = e * d * 4, n * d * 4
    assert per_round_plain >= edge_tensor  # without checkpointing every round keeps [E, d]-sized tensors
    assert per_round_ckpt <= node_state  # with it, only the node state entering each round
    assert held[8, True] - held[2, True] < per_round_plain  # six more rounds cost less than one unchecked round


class _EditsTheEdges(LayerStack):
    """Two MPNN rounds; the edge encoding is scaled in place between them (allowed without
    checkpointing: no autograd node saved it)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.node_encoder, self.edge_encoder = torch.nn.Linear(2, d), torch.nn.Linear(1, d)
        self.hook_node_embed = HookPoint("node")
        self.layers = torch.nn.ModuleList([MPNN(d), MPNN(d)])
        self.readout = torch.nn.Linear(d, 1)
        self.setup()

    def state_hook(self, t: int) -> str:
        return "hook_node_embed" if t == 0 else f"layers.{t - 1}.hook_update"

    def forward(self, graph: Graph) -> ModelOutput:
        x = self.hook_node_embed(self.node_encoder(graph.x))
        e = self.edge_encoder(graph.edge_attr)
        h = self.layers[0](x, graph.edge_index, e, x=x)
        e.mul_(2.0)
        h = self.layers[1](h, graph.edge_index, e, x=x)
        return ModelOutput({"d": self.readout(h).squeeze(-1)}, {}, h)


def test_a_round_argument_edited_in_place_after_the_round_raises(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _EditsTheEdges(4)
    g = Graph(x=torch.rand(5, 2), edge_index=torch.tensor([[0, 1, 2, 3], [1, 2, 3, 4]]), edge_attr=torch.rand(4, 1))
    corr = g.replace(x=torch.rand(5, 2))
    rounds = lambda name: name.startswith("layers.")  # noqa: E731
    attribute(model, g, corr, OutputSum("d"), keep="rows", names_filter=rounds)  # exact without checkpointing
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):  # torch's check of the saved inputs
        attribute(model, g, corr, OutputSum("d"), keep="rows", names_filter=rounds, offload=tmp_path)
    assert no_hooks_left(model) and not any("forward" in m.__dict__ for m in model.modules())


@pytest.mark.parametrize("hidden", [True, False])
@pytest.mark.parametrize("rows_per_block", [3, 1 << 16])
def test_rounds_checkpointed_around_edge_chunks_give_keep_all_by_hand(
    hidden: bool, rows_per_block: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Message MLPs in edge chunks inside the checkpointed rounds: with hidden-neuron hooks (gathers in
    chunks), and without them (chunks not checkpointed again inside the round's checkpoint); the
    differences read back from their files in blocks of 3 rows, or whole."""
    import hookgnn.attribution.slots as slots
    import hookgnn.nn.chunking as chunking
    from hookgnn.nn import edge_chunk_size

    monkeypatch.setattr(slots, "ROWS_PER_BLOCK", rows_per_block)
    nested: list[int] = []
    monkeypatch.setattr(chunking, "checkpoint", lambda *a, **k: nested.append(1) or torch.utils.checkpoint.checkpoint(*a, **k))

    torch.manual_seed(0)
    model = HookedGNN("mpnn", 8, node_in=1, edge_in=1, spec=SPEC, max_steps=3)
    n, e = 20, 90
    g = Graph(x=torch.rand(n, 1), edge_index=torch.randint(0, n, (2, e)), edge_attr=torch.rand(e, 1))
    corr = g.replace(x=torch.rand(n, 1))
    names = None if hidden else (lambda name: "message_mlp" not in name)
    full = attribute(model, g, corr, OutputSum("d"), names_filter=names)
    with edge_chunk_size(16):
        got = attribute(model, g, corr, OutputSum("d"), keep="rows", offload=tmp_path, names_filter=names)
    assert any("message_mlp" in h for h in got.by_row) == hidden
    # no chunk checkpoint inside a checkpointed round: it would keep the first layer's node products of every
    # round from the forward to the backward
    assert not nested
    with edge_chunk_size(16):
        attribute(model, g, corr, OutputSum("d"), keep="rows", names_filter=names)
    assert bool(nested) == (not hidden)  # without offload (no round checkpoints), hidden-free chunks checkpoint
    for hook in full.axes:
        _close(got.by_row[hook], _by_hand(full, hook), 1.0 + float(full.delta[hook].abs().sum()))


def test_offload_keeps_no_freed_scatter_blocks(tmp_path: Path) -> None:
    """With offload= the compiled kernel pools none of the blocks the backward frees (its max aggregation's
    [E, 64] gradients, 2 MiB here); without it, the same run leaves them pooled for reuse."""
    from hookgnn.ops import compiled
    from hookgnn.ops.backend import resolve_backend

    kernel = compiled.load()
    if kernel is None or resolve_backend(torch.zeros(1)) != "compiled":
        pytest.skip("the compiled kernel is off or unavailable here")
    torch.manual_seed(0)
    model = HookedGNN("mpnn", 64, node_in=1, edge_in=1, spec=SPEC, max_steps=3)
    n, e = 256, 8192
    g = Graph(x=torch.rand(n, 1), edge_index=torch.randint(0, n, (2, e)), edge_attr=torch.rand(e, 1))
    corr = g.replace(x=torch.rand(n, 1))
    compiled.release_buffers()
    attribute(model, g, corr, OutputSum("d"), keep="rows", offload=tmp_path)
    assert kernel.pool_bytes() == 0
    attribute(model, g, corr, OutputSum("d"), keep="rows")
    assert kernel.pool_bytes() >= e * 64 * 4  # the pool's limit is back after the offloaded run
    compiled.release_buffers()
