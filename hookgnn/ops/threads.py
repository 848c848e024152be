"""How many CPU threads hookgnn's jobs run torch on: chosen by workload, restored after.

torch runs each op on ``torch.get_num_threads()`` threads (by default one per core). On
the small tensors of a training loop over tiny graphs, or of patching a 10-node graph,
every parallel region costs a wake-up and a barrier that waits for the slowest thread;
on a machine shared with other work that thread is often descheduled, and libgomp's
idle threads spin (its default wait policy, read once when torch loads it) on a core
the work needs. Measured on 2 shared cores: 40 demo training steps took 48 s on 2
threads and 2.9 s on 1; on a quiet machine the two took the same time. So the jobs
(:func:`hookgnn.training.train`, :func:`hookgnn.cli.demo.run_demo`, ``hookgnn eval`` and
``hookgnn metamer``) run under :func:`auto_threads`:

1. an explicit choice wins: ``threads=`` of the job, ``--threads``, or an enclosing
   :func:`use_threads`;
2. else, if ``OMP_NUM_THREADS`` is set, torch's setting (the user chose it);
3. else one thread when ``work < SMALL_WORK``, torch's setting otherwise,

where ``work`` is the element count of the job's largest activations, about
:math:`(N + E) \\cdot d` for a batch of ``N`` nodes and ``E`` edges of width ``d``
(:func:`graph_work`). The previous setting comes back on exit, also when the body raises.

The same rule runs every call of a hooked model a user makes bare: ``model(graph)``,
``run_with_hooks``, ``run_with_cache`` (forward, gradients and the disk cache) and so
:class:`~hookgnn.store.ActivationStore` writes, on every model class (the root module,
:class:`~hookgnn.hooks.HookedRootModule`, wraps them with :func:`threads_by_inputs`), and
patching, attribution and circuit entry points (:func:`threads_by_workload`). A call made
inside a job whose threads are already chosen (any of the above, :func:`auto_threads` or
:func:`use_threads`) keeps that choice and costs one context-variable read.

Importing hookgnn before torch sets ``OMP_WAIT_POLICY=PASSIVE`` unless the user set it
(no spinning at all, at a few microseconds more per parallel region); once torch is
imported it is too late for that process. (It sets ``THP_MEM_ALLOC_ENABLE=1`` the same way:
huge pages for large buffers, see the huge-graphs guide.)

>>> before = torch.get_num_threads()
>>> with auto_threads(work=1_000) as n:
...     n, torch.get_num_threads()
(1, 1)
>>> torch.get_num_threads() == before
True
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch

#: Below this many elements of work per op, one thread is as fast on a quiet machine and
#: much faster on a busy one (see ``benchmarks/bench_threads.py``).
SMALL_WORK = 1 << 20

_explicit: contextvars.ContextVar[int | None] = contextvars.ContextVar("hookgnn_threads", default=None)
#: True inside any thread choice (auto_threads, use_threads, a model call): nested calls keep it.
_chosen: contextvars.ContextVar[bool] = contextvars.ContextVar("hookgnn_threads_chosen", default=False)


def check_threads(threads: Any, name: str = "threads") -> int:
    """``threads`` if it is an integer >= 1, else ``ValueError`` naming ``name``.

    >>> check_threads(2)
    2
    """
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {threads!r}")
    return threads


def graph_work(graph: Any, width: int) -> int:
    """Elements of a round's largest activations on ``graph``: :math:`(N + E) \\cdot d`.

    >>> from hookgnn.graph import Graph
    >>> graph_work(Graph(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]])), 8)
    40
    """
    return (int(graph.num_nodes) + int(graph.num_edges)) * int(width)


def pick_threads(work: int, threads: int | None = None) -> int:
    """The thread count :func:`auto_threads` runs ``work`` elements on (module docstring).

    >>> pick_threads(10, threads=2), pick_threads(10**9, threads=1)
    (2, 1)
    """
    if threads is not None:
        return check_threads(threads)
    chosen = _explicit.get()
    if chosen is not None:
        return chosen
    if os.environ.get("OMP_NUM_THREADS") or work >= SMALL_WORK:
        return max(1, torch.get_num_threads())
    return 1


@contextlib.contextmanager
def _threads(count: int, explicit: bool) -> Iterator[int]:
    before = torch.get_num_threads()
    token = _explicit.set(count) if explicit else None
    chosen = _chosen.set(True)
    if count != before:
        torch.set_num_threads(count)
    try:
        yield count
    finally:
        _chosen.reset(chosen)
        if token is not None:
            _explicit.reset(token)
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def auto_threads(work: int, threads: int | None = None) -> Iterator[int]:
    """Run the body on :func:`pick_threads` ``(work, threads)`` torch threads; yields that count.

    An explicit ``threads`` also holds for every :func:`auto_threads` nested in the body
    (as :func:`use_threads`). The previous ``torch.get_num_threads()`` is restored on
    exit, also when the body raises.
    """
    count = pick_threads(work, threads)
    with _threads(count, explicit=threads is not None) as n:
        yield n


@contextlib.contextmanager
def use_threads(threads: int) -> Iterator[int]:
    """Run the body on ``threads`` torch threads, whatever the workload of the jobs inside
    (an explicit choice: it wins over :func:`auto_threads`' own); restored on exit.

    >>> with use_threads(1), auto_threads(work=10**9) as n:
    ...     n
    1

    :param threads: the torch thread count, an integer >= 1.
    """
    with _threads(check_threads(threads), explicit=True) as n:
        yield n


def explicit_threads() -> int | None:
    """The thread count of the innermost :func:`use_threads` (or explicit
    :func:`auto_threads`) around the caller, or ``None``.

    >>> explicit_threads() is None
    True
    """
    return _explicit.get()


F = TypeVar("F", bound=Callable[..., Any])


def model_width(model: Any) -> int:
    """The widest feature dimension of ``model``'s parameters (1 without parameters): the
    :math:`d` of :func:`graph_work` for a model of any class.

    >>> model_width(torch.nn.Linear(3, 8))  # weight [8, 3], bias [8]
    8
    """
    return max((int(p.shape[-1]) for p in model.parameters() if p.dim()), default=1)


def threads_by_workload(fn: F) -> F:
    """Run ``fn(model, clean, ...)`` under :func:`auto_threads` of ``clean``'s workload
    (:func:`graph_work` with :func:`model_width`): patching, attribution and circuit entry
    points on small graphs run on one thread, where torch's default of every core is slower
    (much slower on a busy machine); an enclosing :func:`use_threads` wins.

    >>> @threads_by_workload
    ... def threads_used(model, clean):
    ...     return torch.get_num_threads()
    >>> from hookgnn.graph import Graph
    >>> threads_used(torch.nn.Linear(1, 4), Graph(x=torch.zeros(3, 1), edge_index=torch.tensor([[0], [1]])))
    1
    """

    @functools.wraps(fn)
    def run(model: Any, clean: Any, *args: Any, **kwargs: Any) -> Any:
        with auto_threads(graph_work(clean, model_width(model))):
            return fn(model, clean, *args, **kwargs)

    return run  # type: ignore[return-value]


def input_rows(inputs: Any) -> int:
    """Rows of work the inputs of a model call carry: ``num_nodes + num_edges`` of a graph
    (anything with integer ``num_nodes`` and ``num_edges``: a hookgnn ``Graph``, a PyG
    ``Data``), the longest dimension of a tensor (``x [N, F]`` gives ``N``, ``edge_index
    [2, E]`` gives ``E``), summed over the items of lists, tuples and dicts; 0 for anything
    else. Times the model's width it is the :math:`(N + E) \\cdot d` of :func:`graph_work`.

    >>> from hookgnn.graph import Graph
    >>> g = Graph(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> input_rows(((g,), {"steps": 4})), input_rows([torch.zeros(10, 3), torch.zeros(2, 7, dtype=torch.long)])
    (5, 17)

    :param inputs: the call's arguments, e.g. ``(args, kwargs)``.
    """
    if isinstance(inputs, torch.Tensor):
        return max(inputs.shape, default=1)
    if isinstance(inputs, (list, tuple)):
        return sum(input_rows(item) for item in inputs)
    if isinstance(inputs, dict):
        return sum(input_rows(item) for item in inputs.values())
    nodes, edges = getattr(inputs, "num_nodes", None), getattr(inputs, "num_edges", None)
    if isinstance(nodes, int) and isinstance(edges, int):
        return nodes + edges
    return 0


def cached_width(model: torch.nn.Module) -> int:
    """:func:`model_width`, read once per model (walking every parameter of a model with
    hundreds of submodules takes longer than a small forward) and kept on the model;
    :meth:`~hookgnn.hooks.HookedRootModule.setup` forgets it.

    >>> cached_width(torch.nn.Linear(3, 8))
    8

    :param model: the module whose parameters give the width.
    """
    width = model.__dict__.get("_threads_width")
    if width is None:
        width = model_width(model)
        object.__setattr__(model, "_threads_width", width)
    return width


def threads_by_inputs(method: F) -> F:
    """Run a model method ``method(model, *args, **kwargs)`` under :func:`auto_threads` of
    its inputs' workload (:func:`input_rows` times :func:`cached_width`): a user's bare
    ``model(graph)`` or ``model.run_with_cache(graph)`` on a small graph runs on one
    thread; torch's setting comes back after, also when a hook or the forward raises. Inside
    a job whose threads are chosen already (an enclosing model call, :func:`auto_threads`,
    :func:`use_threads`, a patching entry point) it calls ``method`` straight away, and so
    under ``torch.compile`` tracing.

    >>> class Net(torch.nn.Linear):
    ...     @threads_by_inputs
    ...     def threads_seen(self, x):
    ...         return torch.get_num_threads()
    >>> Net(4, 4).threads_seen(torch.zeros(10, 4))
    1

    :param method: a method whose first argument is the model and whose other arguments are
        its inputs.
    """

    @functools.wraps(method)
    def run(model: Any, *args: Any, **kwargs: Any) -> Any:
        if _chosen.get() or torch.compiler.is_compiling():
            return method(model, *args, **kwargs)
        # auto_threads, inlined: this runs on every bare call of a model (tens of microseconds less)
        before = torch.get_num_threads()
        count = before if os.environ.get("OMP_NUM_THREADS") else pick_threads(
            input_rows((args, kwargs)) * cached_width(model))
        chosen = _chosen.set(True)
        if count != before:
            torch.set_num_threads(count)
        try:
            return method(model, *args, **kwargs)
        finally:
            _chosen.reset(chosen)
            if torch.get_num_threads() != before:
                torch.set_num_threads(before)

    return run  # type: ignore[return-value]
