"""hookgnn.parallel.over_interventions: IIA over a dataset on one or two processes equals the plain call."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from causal_workers import handbuilt_case
from hookgnn.causal import IIAResult, OutputIIA, interchange_accuracy, neurons, output_iia
from hookgnn.parallel import World, over_interventions


def assert_same_iia(got: IIAResult, want: IIAResult) -> None:
    assert (got.hint, got.subspace) == (want.hint, want.subspace)
    for name in ("steps", "correct", "informative"):
        assert torch.equal(getattr(got, name), getattr(want, name)), name


def assert_same_outputs(got: dict[str, OutputIIA], want: dict[str, OutputIIA]) -> None:
    assert list(got) == list(want)
    for name, w in want.items():
        g = got[name]
        assert (g.hint, g.subspace, g.output) == (w.hint, w.subspace, w.output)
        for f in ("steps", "intervention", "downstream", "correct", "base_correct", "unchanged"):
            assert torch.equal(getattr(g, f), getattr(w, f)), (name, f)


@pytest.fixture(scope="module")
def plain() -> dict[str, Any]:
    """The plain (one call, every intervention) results: the reference."""
    model, data = handbuilt_case()
    return {"iia": interchange_accuracy(model, data, neurons(4, [1])),
            "outputs": output_iia(model, data, neurons(4, [1]))}


def test_plain_results_are_mixed_so_that_order_matters(plain: dict[str, Any]) -> None:
    correct = plain["iia"].correct
    assert correct.numel() == 15 and 0 < int(correct.sum()) < 15  # neither all right nor all wrong


def test_one_process_equals_the_plain_call(plain: dict[str, Any]) -> None:
    model, data = handbuilt_case()
    assert_same_iia(over_interventions(interchange_accuracy, model, data, neurons(4, [1]), copies=4), plain["iia"])
    assert_same_outputs(over_interventions(output_iia, model, data, neurons(4, [1]), copies=4, world=World()),
                        plain["outputs"])


def test_bad_scorers_and_empty_data_are_refused() -> None:
    model, data = handbuilt_case()
    with pytest.raises(TypeError, match="returned a float"):
        over_interventions(lambda *a, **k: 0.5, model, data, neurons(4, [1]))
    with pytest.raises(ValueError, match="no interventions to score"):
        over_interventions(interchange_accuracy, model, data.subset([]), neurons(4, [1]))


def test_two_processes_equal_the_plain_call_and_share_an_error(plain: dict[str, Any]) -> None:
    from causal_workers import interventions_job
    from parallel_workers import run_ranks

    ranks = run_ranks(interventions_job, 2, 4)  # 15 interventions: rank 0 runs 8, rank 1 runs 7
    for rank, (status, out) in enumerate(ranks):
        assert status == "ok", out
        assert_same_iia(out["iia"], plain["iia"])
        assert_same_outputs(out["outputs"], plain["outputs"])
        kind, err = out["error"]
        assert kind == "error"
        if rank == 1:
            assert isinstance(err, ValueError) and "rank 1's scorer broke" in str(err)
        else:
            assert isinstance(err, RuntimeError) and "failed on rank 1 of 2" in str(err)
