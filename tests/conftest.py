"""Shared test settings: hypothesis profiles (CI runs derandomized, no deadline), one seed
per test (so no test depends on the tests that ran before it), one torch thread per worker."""

import os
import random

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci", deadline=None, max_examples=40, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else os.environ.get("HYPOTHESIS_PROFILE", "default"))
# One torch thread per pytest-xdist worker (one worker per core); two threads otherwise.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, torch.get_num_threads())))


SEED = 0


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Reseed torch, numpy and ``random`` before every test: a test that draws a model or a
    graph without a seed of its own gets the same one whatever ran before it (in this
    worker, in any order, alone or with ``-k``). Module-scoped fixtures are built before
    this runs: they seed themselves. Hypothesis reseeds ``random`` inside ``@given``."""
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    random.seed(SEED)


@pytest.fixture(scope="module")
def one_thread():  # noqa: ANN201
    """One torch thread for a module of tiny-tensor tests, restored after: tiny matrices run
    fastest on one thread and OpenMP spin-waits make them noisy on a busy machine. Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def two_threads(monkeypatch):  # noqa: ANN001, ANN201
    """torch on 2 threads as in a fresh process on 2 cores, no OMP_NUM_THREADS; restored after."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)
