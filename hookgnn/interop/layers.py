"""Which modules of a PyTorch Geometric model :func:`~hookgnn.interop.pyg.from_pyg` hooks, and
which models it refuses.

A ``MessagePassing`` call is a round (its ``message`` reads the source state from
:func:`source_argument`); a leaf :func:`is_linear` module or one of :data:`ACTIVATIONS`
gets ``hook_out``; a scripted or ``torch.compile``'d model is refused, since PyG's
hooks do not fire there. Re-exported by :mod:`hookgnn.interop.pyg`.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

#: Activation modules that get a hook point (elementwise maps).
ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Sigmoid, nn.Tanh,
    nn.Softplus, nn.Softsign, nn.Hardtanh, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.LogSigmoid, nn.Tanhshrink,
)


def require_pyg() -> Any:
    """``torch_geometric.nn``, or an ``ImportError`` saying how to install it."""
    try:
        import torch_geometric.nn as pyg_nn
    except ImportError as e:  # pragma: no cover - CI installs the extra
        raise ImportError("hookgnn.from_pyg needs PyTorch Geometric: pip install 'hookgnn[pyg]'") from e
    return pyg_nn


def is_linear(m: nn.Module) -> bool:
    """A ``torch.nn.Linear`` or PyG ``Linear`` (weight ``[out, in]``, applied as ``x W^T + b``)."""
    if isinstance(m, nn.Linear):
        return True
    return type(m).__name__ == "Linear" and type(m).__module__.startswith("torch_geometric")


def source_argument(m: nn.Module) -> str | None:
    """The argument of ``m.message`` that holds the source node state: ``x_j``, else the first ``*_j``."""
    names = list(inspect.signature(m.message).parameters)  # type: ignore[operator]
    if "x_j" in names:
        return "x_j"
    return next((n for n in names if n.endswith("_j")), None)


def check_model(model: Any) -> None:
    """Raise ``TypeError`` for what :func:`~hookgnn.interop.pyg.from_pyg` cannot hook: a non-module, a scripted
    module or a ``torch.compile``'d one (PyG's hooks do not fire there), and a module with ``cached=True`` (its
    normalisation of the first graph would be reused for every other graph and batch of copies)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"from_pyg wraps a torch.nn.Module, got {type(model).__name__}")
    if isinstance(model, torch.jit.ScriptModule):
        raise TypeError("a scripted module runs without PyG's hooks; wrap the Python module instead")
    if type(model).__name__ == "OptimizedModule" and hasattr(model, "_orig_mod"):
        raise TypeError("a torch.compile'd module skips PyG's message and aggregate hooks; wrap the module before "
                        "compiling it (hookgnn.from_pyg(model._orig_mod))")
    for path, module in model.named_modules():
        if getattr(module, "cached", False) is True:
            raise TypeError(f"{path or 'the model'} ({type(module).__name__}) has cached=True: it keeps the normalised "
                            "adjacency of the first graph it sees, so every other graph, and the batched copies of one "
                            "graph that patching and attribution run, would silently use the wrong one; build it with "
                            "cached=False")
