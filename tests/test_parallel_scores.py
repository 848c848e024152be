"""Dataset-level scores (hookgnn.parallel): the mean over pairs, on one process and sharded over two.

References are plain Python loops over the pairs calling the per-pair functions of
hookgnn.patching / hookgnn.attribution and averaging their numbers by hand (never hookgnn.parallel's packing).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from hookgnn import Graph, attribution, parallel, patching
from hookgnn.metrics import OutputSum
from hookgnn.parallel import World
from hookgnn.patching.results import Attribution, EdgeScores, HookScores
from parallel_workers import SCORE_CASES, case_call, same_structure_pairs, score_cases, scorer, tiny_model

METRIC = OutputSum("d")


_LOOPS: dict[str, Any] = {}


def plain_loop_mean(name: str) -> Any:
    """The per-pair function on every pair in a Python loop, its numbers averaged by hand."""
    if name not in _LOOPS:
        _LOOPS[name] = _plain_loop_mean(name)
    return _LOOPS[name]


def _plain_loop_mean(name: str) -> Any:
    model, pairs, kwargs = case_call(name)
    fn = scorer(SCORE_CASES[name][0])
    results = [fn(model, clean, corrupted, METRIC, **kwargs) for clean, corrupted in pairs]
    first = results[0]
    baseline = sum(r.baseline for r in results) / len(results)
    if isinstance(first, HookScores):
        values = torch.stack([r.values for r in results]).mean(0)
        return HookScores(values, first.hooks, first.axes, baseline, first.direction)
    if isinstance(first, EdgeScores):
        assert all(r.edges == first.edges for r in results)
        return EdgeScores(first.edges, torch.stack([r.scores for r in results]).mean(0), baseline, first.direction)
    assert isinstance(first, Attribution)
    kept = {name: {h: torch.stack([getattr(r, name)[h] for r in results]).mean(0) for h in first.axes}
            for name in ("by_entry", "by_row", "by_feature") if getattr(first, name)}
    return Attribution(first.axes, baseline, first.direction, keep=first.keep, **kept)


def assert_same_result(got: Any, want: Any) -> None:
    assert type(got) is type(want)
    assert got.direction == want.direction
    atol = 1e-6 * max(1.0, abs(float(want.baseline)))  # effects: differences of metrics, rounded at the metric's scale
    close = lambda a, b: torch.testing.assert_close(a, b, rtol=1e-5, atol=atol)  # noqa: E731
    if isinstance(want, HookScores):
        assert (got.hooks, got.axes) == (want.hooks, want.axes)
        close(got.values, want.values)
    elif isinstance(want, EdgeScores):
        assert got.edges == want.edges
        close(got.scores, want.scores)
    else:
        assert got.keep == want.keep and list(got.axes.items()) == list(want.axes.items())
        for name in ("by_entry", "by_row", "by_feature"):
            assert getattr(got, name).keys() == getattr(want, name).keys(), name
            for h in getattr(want, name):
                close(getattr(got, name)[h], getattr(want, name)[h])
    assert got.baseline == pytest.approx(want.baseline, rel=1e-5, abs=1e-7)


@pytest.fixture(scope="module")
def two_ranks() -> list[tuple[str, Any]]:
    import parallel_workers

    ranks, _ = parallel_workers.two_ranks()  # one start of 2 processes for all distributed tests
    return [(status, value["scores"] if status == "ok" else value) for status, value in ranks]


@pytest.mark.parametrize("name", list(SCORE_CASES))
def test_one_process_equals_plain_loop_over_pairs(name: str) -> None:
    assert_same_result(score_cases([name])[name], plain_loop_mean(name))


@pytest.mark.parametrize("name", list(SCORE_CASES))
def test_two_processes_equal_plain_loop_over_pairs(two_ranks: list[tuple[str, Any]], name: str) -> None:
    want = plain_loop_mean(name)
    for status, results in two_ranks:  # 3 pairs: rank 0 scores 2, rank 1 scores 1; both return the mean of 3
        assert status == "ok", results
        assert_same_result(results[name], want)


def test_patch_mean_over_pairs_is_exact_patching_mean() -> None:
    """Independent of the sweep machinery: patch one node state by hand in each pair, average the effects."""
    model, pairs = tiny_model(), same_structure_pairs(3)
    hook, node = "layers.1.hook_update", 4
    sweep = parallel.over_pairs(patching.patch, model, pairs, METRIC, components=patching.hooks(model, [hook]))
    by_hand = []
    for clean, corrupted in pairs:
        _, cache = model.run_with_cache(clean, names_filter=[hook])

        def put(act: torch.Tensor, hook: Any) -> torch.Tensor:
            act = act.clone()
            act[node] = cache[hook.name][node]
            return act

        with torch.no_grad():
            patched = float(METRIC(model.run_with_hooks(corrupted, fwd_hooks=[(hook, put)]), corrupted).mean())
            by_hand.append(patched - float(METRIC(model(corrupted), corrupted).mean()))
    assert sweep[hook][node].item() == pytest.approx(sum(by_hand) / len(by_hand), rel=1e-5, abs=1e-6)


def test_pairs_from_a_generator_and_a_dataloader() -> None:
    pairs, model, hook = same_structure_pairs(3), tiny_model(), "layers.2.hook_update"
    want = parallel.over_pairs(attribution.attribute, model, pairs, METRIC, keep="rows")
    from_generator = parallel.over_pairs(attribution.attribute, model, (p for p in pairs), METRIC, keep="rows")
    loader = torch.utils.data.DataLoader(pairs, batch_size=None)
    from_loader = parallel.over_pairs(attribution.attribute, model, loader, METRIC, keep="rows")
    for got in (from_generator, from_loader):
        assert torch.equal(got.by_row[hook], want.by_row[hook])


def test_a_pair_of_batches_counts_once() -> None:
    """The mean over pairs of per-pair means: a pair holding 2 graphs weighs as much as a pair of 1."""
    model, (a, b, c) = tiny_model(), same_structure_pairs(3)
    batch = (Graph.collate([a[0], b[0]]), Graph.collate([a[1], b[1]]))
    got = parallel.over_pairs(attribution.attribute, model, [batch, c], METRIC, keep="features")
    per_pair = [attribution.attribute(model, *p, METRIC, keep="features") for p in (batch, c)]
    for h in got.axes:
        torch.testing.assert_close(got.by_feature[h], (per_pair[0].by_feature[h] + per_pair[1].by_feature[h]) / 2)


def test_row_scores_of_different_structures_are_refused() -> None:
    from parallel_workers import mixed_structure_pairs

    with pytest.raises(ValueError, match="pair 1 has scores of shapes"):
        parallel.over_pairs(attribution.atp_star, tiny_model(), mixed_structure_pairs(2), METRIC)


def test_keep_all_attribution_and_empty_pairs_and_non_pairs_are_refused() -> None:
    pairs = same_structure_pairs(2)
    with pytest.raises(ValueError, match="keep='all'"):
        parallel.over_pairs(attribution.attribute, tiny_model(), pairs, METRIC, keep="all")
    with pytest.raises(ValueError, match="no pairs"):
        parallel.over_pairs(attribution.atp_star, tiny_model(), [], METRIC)
    with pytest.raises(TypeError, match="pair 1 is str"):
        parallel.over_pairs(attribution.atp_star, tiny_model(), [pairs[0], "x"], METRIC)
    with pytest.raises(TypeError, match="batch_size=None"):
        loader = torch.utils.data.DataLoader(pairs, batch_size=2, collate_fn=list)
        parallel.over_pairs(attribution.atp_star, tiny_model(), loader, METRIC)


def test_shard_takes_every_world_size_th_item() -> None:
    items = list(range(7))
    shares = [list(World(r, 3).shard(items)) for r in range(3)]
    assert shares == [[0, 3, 6], [1, 4], [2, 5]]
    assert [list(World(r, 3).shard(iter(items))) for r in range(3)] == shares
    assert sorted(sum(shares, [])) == items


@pytest.mark.parametrize("problem, own, other", [("not_a_pair", TypeError, RuntimeError),
                                                 ("structure", ValueError, ValueError)])
def test_an_error_on_one_rank_is_raised_on_every_rank(two_ranks: list[tuple[str, Any]], problem: str, own: type,
                                                      other: type) -> None:
    (_, on_rank0), (_, on_rank1) = two_ranks
    (status0, err0), (status1, err1) = on_rank0[problem], on_rank1[problem]
    assert status0 == status1 == "error"
    assert isinstance(err1, own) and isinstance(err0, other)
    assert "rank 1" in str(err0)
