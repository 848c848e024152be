"""Run a function on several CPU processes (gloo) for the distributed tests, and collect what each returns.

:func:`run_ranks` starts ``world_size`` processes with ``torch.multiprocessing.spawn``;
each joins a gloo process group on a free port of 127.0.0.1, calls ``fn(*args)`` and
saves its return value (or the exception it raised) to a file, which the parent reads
back. The children import this module and the test's job functions by name, so jobs
live at module level in importable modules (this one).
"""

from __future__ import annotations

import functools
import os
import pickle
import socket
import tempfile
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from hookgnn import Graph, HookedGNN
from hookgnn.spec import FeatureSpec


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(rank: int, world_size: int, port: int, fn: Callable[..., Any], args: tuple[Any, ...], out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size,
                            timeout=timedelta(seconds=60))
    try:
        try:
            result: Any = ("ok", fn(*args))
        except Exception as err:  # noqa: BLE001 - handed to the parent
            result = ("error", err)
        with open(Path(out) / f"{rank}.pkl", "wb") as f:
            pickle.dump(result, f)
    finally:
        if dist.is_initialized():  # a job may have ended the group itself (hookgnn train does)
            dist.destroy_process_group()


def run_ranks(fn: Callable[..., Any], world_size: int, *args: Any) -> list[tuple[str, Any]]:
    """``[("ok", value) or ("error", exception)]`` of ``fn(*args)`` on each rank, in rank order."""
    with tempfile.TemporaryDirectory() as out:
        env = os.environ.copy()
        try:
            os.environ["OMP_NUM_THREADS"] = "1"
            mp.spawn(_entry, args=(world_size, free_port(), fn, args, out), nprocs=world_size, join=True)
        finally:
            os.environ.clear()
            os.environ.update(env)
        results = []
        for rank in range(world_size):
            with open(Path(out) / f"{rank}.pkl", "rb") as f:
                results.append(pickle.load(f))
        return results


# ------------------------------------------------------------------ shared fixtures of the jobs
def tiny_model(seed: int = 0, processor: str = "mpnn") -> HookedGNN:
    """A 3-round, 8-wide model with one scalar node output ``d`` (the same on every process)."""
    torch.manual_seed(seed)
    return HookedGNN(processor, 8, node_in=1, edge_in=1, spec={"d": FeatureSpec("output", "node", "scalar")},
                     max_steps=3)


def same_structure_pairs(count: int = 3, seed: int = 1) -> list[tuple[Graph, Graph]]:
    """``count`` pairs on one graph (7 nodes, 16 edges, a self-loop, a multi-edge), inputs resampled."""
    gen = torch.Generator().manual_seed(seed)
    n = 7
    edge_index = torch.cat([torch.randint(0, n, (2, 14), generator=gen), torch.tensor([[3, 2], [3, 5]])], 1)
    edge_index[:, 1] = edge_index[:, 0]  # a multi-edge
    pairs = []
    for _ in range(count):
        g = Graph(x=torch.rand(n, 1, generator=gen), edge_index=edge_index, edge_attr=torch.rand(16, 1, generator=gen))
        pairs.append((g, g.replace(x=torch.rand(n, 1, generator=gen), edge_attr=torch.rand(16, 1, generator=gen))))
    return pairs


def mixed_structure_pairs(count: int = 3, seed: int = 2) -> list[tuple[Graph, Graph]]:
    """``count`` pairs on graphs of different sizes and edges (for neuron- and weight-level scores)."""
    gen = torch.Generator().manual_seed(seed)
    pairs = []
    for i in range(count):
        n, e = 4 + i, 6 + 2 * i
        g = Graph(x=torch.rand(n, 1, generator=gen), edge_index=torch.randint(0, n, (2, e), generator=gen),
                  edge_attr=torch.rand(e, 1, generator=gen))
        pairs.append((g, g.replace(x=torch.rand(n, 1, generator=gen))))
    return pairs


# ------------------------------------------------------------------ jobs run on every rank
#: name -> (per-pair scorer: ``patch`` of hookgnn.patching or an estimator of hookgnn.attribution, pairs, keywords;
#: ``components=("nodes", site)`` stands for the selector ``nodes(model, site)``)
SCORE_CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "attribution_entries": ("attribute", "same", {"keep": "entries"}),
    "ig_rows_noising": ("attribute", "same", {"ig_steps": 2, "keep": "rows", "direction": "noising"}),
    "attribution_features_mixed": ("attribute", "mixed", {"keep": "features"}),
    "eap_messages": ("eap", "same", {"level": "message"}),
    "eap_weight_mixed": ("eap", "mixed", {"level": "weight"}),
    "atp_star": ("atp_star", "same", {}),
    "patch_nodes": ("patch", "same", {"components": ("nodes", "update")}),
}


def scorer(name: str) -> Callable[..., Any]:
    """The per-pair function of a case: ``patch`` from hookgnn.patching, the others from hookgnn.attribution."""
    from hookgnn import attribution, patching

    return patching.patch if name == "patch" else getattr(attribution, name)


def case_call(name: str) -> tuple[Any, list[tuple[Graph, Graph]], dict[str, Any]]:
    """(model, pairs, the scorer's keywords after the metric) of a case; selectors resolved."""
    from hookgnn.patching import nodes

    _, which, kwargs = SCORE_CASES[name]
    model = tiny_model()
    pairs = same_structure_pairs() if which == "same" else mixed_structure_pairs()
    if "components" in kwargs:
        kwargs = {**kwargs, "components": nodes(model, kwargs["components"][1])}
    return model, pairs, kwargs


def score_cases(names: list[str]) -> dict[str, Any]:
    """Every case through :func:`hookgnn.parallel.over_pairs` on this rank."""
    from hookgnn import parallel
    from hookgnn.metrics import OutputSum

    out = {}
    for name in names:
        model, pairs, kwargs = case_call(name)
        out[name] = parallel.over_pairs(scorer(SCORE_CASES[name][0]), model, pairs, OutputSum("d"), **kwargs)
    return out


def rank_dependent_pairs(problem: str) -> Any:
    """Rank 1 gets a bad pair (``"not_a_pair"``) or pairs of another structure (``"structure"``); sharded=True."""
    from hookgnn import parallel
    from hookgnn.attribution import attribute
    from hookgnn.metrics import OutputSum

    rank = dist.get_rank()
    pairs: list[Any] = same_structure_pairs(2)
    if rank == 1:
        pairs = [pairs[0], "not a pair"] if problem == "not_a_pair" else mixed_structure_pairs(1)
    return parallel.over_pairs(attribute, tiny_model(), pairs, OutputSum("d"), keep="rows", sharded=True)


ERROR_CASES = ("not_a_pair", "structure")


def two_rank_job(names: list[str]) -> dict[str, Any]:
    """The score cases, then the error cases as ``("error", exception)`` or ``("ok", value)``."""
    out: dict[str, Any] = score_cases(names)
    for problem in ERROR_CASES:
        try:
            out[problem] = ("ok", rank_dependent_pairs(problem))
        except Exception as err:  # noqa: BLE001 - the test looks at it
            out[problem] = ("error", err)
    return out


def train_job(config: dict[str, Any]) -> tuple[list[dict[str, float]], dict[str, torch.Tensor]]:
    """``train(TrainConfig(**config))``: the history and the final weights."""
    from hookgnn.training import TrainConfig, train

    model, history = train(TrainConfig(**config))
    return history, {k: v.detach().clone() for k, v in model.state_dict().items()}


def cli_job(argv: list[str]) -> None:
    """``hookgnn`` with ``argv`` on this rank, with the environment torchrun would give it."""
    from hookgnn.cli import main

    os.environ.update(RANK=str(dist.get_rank()), WORLD_SIZE=str(dist.get_world_size()), LOCAL_RANK=str(dist.get_rank()))
    main(argv)


def every_job(score_names: list[str], train_config: dict[str, Any], cli_argv: list[str]) -> dict[str, Any]:
    """The score cases, training and ``hookgnn train`` in one process group (the CLI last: it ends the group).

    Starting processes costs more than these small jobs, so the default suite starts them once.
    """
    out: dict[str, Any] = {"scores": two_rank_job(score_names), "train": train_job(train_config)}
    cli_job(cli_argv)
    return out


_KEPT: list[tempfile.TemporaryDirectory[str]] = []  # the CLI's output folder, removed when the tests end


@functools.cache
def two_ranks() -> tuple[list[tuple[str, Any]], Path]:
    """:func:`every_job` on 2 processes, once per test session: ``(per-rank results, folder of the CLI's output)``.

    The CLI writes ``folder/two/m.pt``.
    """
    from test_parallel_training import CONFIG, TRAIN_ARGS

    _KEPT.append(tempfile.TemporaryDirectory(prefix="hookgnn-ranks-"))
    folder = Path(_KEPT[-1].name)
    return run_ranks(every_job, 2, list(SCORE_CASES), CONFIG, [*TRAIN_ARGS, "--out", str(folder / "two" / "m.pt")]), folder
