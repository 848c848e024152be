"""Which implementation computes scatter max/min: choosing, overriding, resolving.

Backends (every one gives bit-identical ``out`` and ``arg``, lowest edge index on ties):

* ``"compiled"``: the C++ CPU kernel of :mod:`hookgnn.ops.compiled`, built on first use;
  if it cannot be built, one warning and the ``"torch"`` path.
* ``"triton"``: the Triton GPU kernel of :mod:`hookgnn.ops.triton_extreme` (only if
  triton is importable: ``pip install hookgnn[gpu]``), for CUDA tensors (CPU tensors
  too when triton runs in its interpreter, ``TRITON_INTERPRET=1``).
* ``"torch"``: plain PyTorch (``scatter_reduce`` + a second pass for the winner).
* ``"torch_scatter"``: ``torch_scatter.scatter_max/min`` (only if importable), with its
  ``arg = E`` for empty nodes mapped to ``-1``.
* ``"auto"`` (default): ``"compiled"`` for CPU tensors, ``"triton"`` for CUDA tensors
  when triton is importable, ``"torch"`` otherwise.

The choice, from strongest to weakest: the ``backend=`` argument of a call, the
innermost :func:`use_backend` context, :func:`set_backend`, the environment variable
``HOOKGNN_SCATTER_BACKEND``, ``"auto"``. A kernel that cannot run on the tensors'
device falls back (``"compiled"`` on CUDA to ``"torch"``, ``"triton"`` on CPU to
``"compiled"``), except a per-call ``backend="triton"`` for CPU tensors outside the
interpreter, which raises.

>>> get_backend()
'auto'
>>> with use_backend("torch"):
...     get_backend()
'torch'
>>> resolve_backend(torch.zeros(2), "auto") in ("compiled", "torch")
True
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from collections.abc import Iterator
from typing import Literal

import torch
from torch import Tensor

from hookgnn.ops import compiled, triton_extreme

Backend = Literal["auto", "compiled", "triton", "torch", "torch_scatter"]
BACKENDS: tuple[Backend, ...] = ("auto", "compiled", "triton", "torch", "torch_scatter")
_OPTIONAL = {"torch_scatter": "the torch_scatter package", "triton": "the triton package (pip install 'hookgnn[gpu]')"}
ENV_VAR = "HOOKGNN_SCATTER_BACKEND"

_global: list[Backend | None] = [None]  # set_backend(); None defers to the env var
_local = threading.local()  # stack of use_backend() choices, per thread


def validate_backend(name: str) -> Backend:
    """Return ``name`` if it is a known backend, else raise ``ValueError``.

    >>> validate_backend("torch")
    'torch'
    """
    if name not in BACKENDS:
        raise ValueError(f"unknown scatter backend {name!r}; expected one of {BACKENDS}")
    if name in _OPTIONAL and not _installed(name):
        raise ValueError(f"scatter backend {name!r} needs {_OPTIONAL[name]}")
    return name  # type: ignore[return-value]


def torch_scatter_installed() -> bool:
    """Whether ``torch_scatter`` can be imported (without importing it)."""
    return importlib.util.find_spec("torch_scatter") is not None


def _installed(name: str) -> bool:
    return torch_scatter_installed() if name == "torch_scatter" else triton_extreme.available()


def available_backends() -> tuple[Backend, ...]:
    """Backends that can be selected here (``"compiled"`` is always selectable: it falls
    back to ``"torch"`` with a warning if the kernel cannot be built).

    >>> {"auto", "compiled", "torch"} <= set(available_backends())
    True
    """
    return tuple(b for b in BACKENDS if b not in _OPTIONAL or _installed(b))


def set_backend(name: str | None) -> None:
    """Choose the backend for the whole process; ``None`` goes back to the env var/auto.

    >>> set_backend("torch"); get_backend()
    'torch'
    >>> set_backend(None); get_backend()
    'auto'
    """
    _global[0] = None if name is None else validate_backend(name)


def get_backend() -> Backend:
    """The backend a call without ``backend=`` would ask for (before resolving "auto")."""
    stack = getattr(_local, "stack", None)
    if stack:
        return stack[-1]
    if _global[0] is not None:
        return _global[0]
    env = os.environ.get(ENV_VAR, "").strip()
    return validate_backend(env) if env else "auto"


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Use ``name`` inside the ``with`` block (this thread only); contexts nest.

    >>> with use_backend("torch"):
    ...     with use_backend("compiled"):
    ...         inner = get_backend()
    ...     outer = get_backend()
    >>> inner, outer
    ('compiled', 'torch')
    """
    validate_backend(name)
    stack = _local.__dict__.setdefault("stack", [])
    stack.append(name)
    try:
        yield
    finally:
        stack.pop()


def resolve_backend(src: Tensor, name: str | None = None) -> Literal["compiled", "triton", "torch", "torch_scatter"]:
    """The concrete implementation that will run for ``src`` under choice ``name``.

    Non-floating tensors always take ``"torch"``. ``"compiled"`` resolves to ``"torch"``
    off the CPU and where the kernel cannot be built (after one warning); ``"triton"``
    to ``"compiled"`` on a CPU outside Triton's interpreter, unless asked for by the
    call's ``name`` (then ``ValueError``).
    """
    choice = get_backend() if name is None else validate_backend(name)
    if choice == "torch_scatter":
        return "torch_scatter"
    if choice == "torch" or not src.is_floating_point():
        return "torch"
    if choice == "triton" and name is not None and not triton_extreme.usable_for(src):
        raise ValueError(
            f"scatter backend 'triton' cannot run on {src.device} tensors here: it needs CUDA, "
            "or TRITON_INTERPRET=1 set before triton is imported (CPU tensors in the interpreter)"
        )
    if choice in ("triton", "auto") and triton_extreme.usable_for(src) and (choice == "triton" or src.is_cuda):
        return "triton"
    if src.device.type != "cpu":
        return "torch"
    return "compiled" if compiled.load() is not None else "torch"


__all__ = [
    "BACKENDS",
    "ENV_VAR",
    "Backend",
    "available_backends",
    "get_backend",
    "resolve_backend",
    "set_backend",
    "torch_scatter_installed",
    "use_backend",
    "validate_backend",
]
