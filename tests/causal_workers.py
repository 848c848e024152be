"""Jobs of the distributed causal tests (run on every rank by :func:`parallel_workers.run_ranks`)."""

from __future__ import annotations

from typing import Any

import torch.distributed as dist

import handbuilt
from hookgnn.causal import InterchangeData, interchange_data, random_interventions, task_pairs
from hookgnn.tasks import get_task

ROUNDS = 8


def handbuilt_case() -> tuple[Any, InterchangeData]:
    """The hand-built Bellman-Ford network and 15 interventions (5 pairs x steps 1..3) on d_h."""
    bf = get_task("bellman_ford")
    pairs = [tuple(g.replace(x=g.x[:, :1]) for g in p) for p in task_pairs(bf, 5, seed=3, n=5, p=0.6)]
    data = interchange_data(bf, "d_h", pairs, random_interventions(pairs, [1, 2, 3], seed=1),
                            outputs=["d"])
    return handbuilt.build(ROUNDS), data


def interventions_job(copies: int) -> dict[str, Any]:
    """over_interventions of interchange_accuracy and output_iia (distractor channel 1), and a scorer that
    fails on rank 1 only."""
    from hookgnn.causal import interchange_accuracy, neurons, output_iia
    from hookgnn.parallel import over_interventions

    model, data = handbuilt_case()
    out: dict[str, Any] = {
        name: over_interventions(fn, model, data, neurons(4, [1]), copies=copies)
        for name, fn in (("iia", interchange_accuracy), ("outputs", output_iia))}

    def flaky(model: Any, share: InterchangeData, subspace: Any, **kwargs: Any) -> Any:
        if dist.get_rank() == 1:
            raise ValueError("rank 1's scorer broke")
        return interchange_accuracy(model, share, subspace, **kwargs)

    try:
        out["error"] = ("ok", over_interventions(flaky, model, data, neurons(4, [1])))
    except Exception as err:  # noqa: BLE001 - the test looks at it
        out["error"] = ("error", err)
    return out
