"""hookgnn: hooks, caches, patching and attribution for graph neural networks.

>>> import torch, hookgnn
>>> model = hookgnn.HookedGNN("mpnn", d_hidden=8, node_in=1, max_steps=2)
>>> graph = hookgnn.Graph(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
>>> _, cache = model.run_with_cache(graph)
>>> sorted(k for k in cache if k.startswith("layers.0.hook"))
['layers.0.hook_aggregation', 'layers.0.hook_message', 'layers.0.hook_src', 'layers.0.hook_update', 'layers.0.hook_update_pre']
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

# OpenMP threads that spin while they wait make every parallel region on a busy machine wait for a
# descheduled thread: at 2 threads a small attribution ran 4x slower than at 1 under load, and
# 2x slower at 1e5 edges. libgomp reads the policy once, when torch loads it, so this default
# applies only if torch is not imported yet; OMP_WAIT_POLICY=active (set by you) wins.
#
# Fresh multi-megabyte CPU buffers (a backward's gradients on a large graph) fault in 4 KiB page by
# page: attribute(keep="rows") at E = 1e6 spent more system time than user time, 8.4M page faults.
# torch backs allocations of 2 MiB and more with transparent huge pages when THP_MEM_ALLOC_ENABLE
# is set, read once when torch first allocates: 0.23M faults, 2.20x -> 1.71-1.78x its two passes and
# a lower peak (13.6 vs 15.4 GB). THP_MEM_ALLOC_ENABLE=0 (set by you) wins; imported after torch,
# hookgnn changes neither.
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from hookgnn import _moved  # noqa: E402

_moved.install()  # the module paths of 0.1 that moved, as aliases that warn (hookgnn._moved)

from hookgnn._version import __version__  # noqa: E402


def _is_command_line() -> bool:
    """Whether this process is the ``hookgnn`` command (its console script, or ``python -m hookgnn.cli``).

    The command imports torch only once its arguments are parsed, so that ``hookgnn --help``,
    ``hookgnn --version`` and argument errors answer at once (torch takes seconds to import on a
    busy machine): there the public names below are imported on first use, and the PyG adapter is not
    registered (the command's jobs do not read PyG graphs).
    """
    if os.path.basename(sys.argv[0]) in ("hookgnn", "hookgnn.exe", "hookgnn-script.py"):
        return True
    argv = list(getattr(sys, "orig_argv", []))
    return any(a == "-m" and b == "hookgnn.cli" for a, b in zip(argv, argv[1:]))


def _import_all() -> None:
    """Import the public names below (and torch with them) and register the PyG adapter."""
    global ActivationCache, Field, Graph, HookedRootModule, HookError, HookHandle, HookPoint, HookedGNN
    global ModelOutput, act_name, PROCESSORS, HookedMessagePassing, HookedMLP, FeatureSpec
    from hookgnn.cache import ActivationCache
    from hookgnn.graph import Field, Graph
    from hookgnn.hooks import HookedRootModule, HookError, HookHandle, HookPoint
    from hookgnn.models import HookedGNN, ModelOutput
    from hookgnn.names import act_name
    from hookgnn.nn import PROCESSORS, HookedMessagePassing, HookedMLP
    from hookgnn.spec import FeatureSpec

    # The PyTorch Geometric adapter registers its Graph converters and how the estimators read
    # PyG layers (hookgnn.graph, hookgnn.rounds); it imports torch_geometric only when used.
    import hookgnn.interop  # noqa: F401


if TYPE_CHECKING:  # the names _import_all binds, for type checkers and editors
    from hookgnn.cache import ActivationCache
    from hookgnn.graph import Field, Graph
    from hookgnn.hooks import HookedRootModule, HookError, HookHandle, HookPoint
    from hookgnn.models import HookedGNN, ModelOutput
    from hookgnn.names import act_name
    from hookgnn.nn import PROCESSORS, HookedMessagePassing, HookedMLP
    from hookgnn.spec import FeatureSpec
elif _is_command_line():
    def __getattr__(name: str) -> object:
        """The public names, imported on first use (only in the ``hookgnn`` command, see :func:`_is_command_line`)."""
        if name in __all__ and name != "from_pyg":
            _import_all()
            return globals()[name]
        raise AttributeError(f"module 'hookgnn' has no attribute {name!r}")
else:
    _import_all()


def from_pyg(model: object, example: object = None, inputs: object = None) -> HookedRootModule:
    """Wrap an existing PyTorch Geometric model with hook points on every round, without
    copying it: a :class:`hookgnn.interop.PyGModel` (see :func:`hookgnn.interop.from_pyg`;
    needs the ``[pyg]`` extra).

    >>> import torch, hookgnn
    >>> from torch_geometric.nn import GCNConv
    >>> class Net(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.conv = GCNConv(2, 2)
    ...     def forward(self, x, edge_index):
    ...         return self.conv(self.conv(x, edge_index).relu(), edge_index)
    >>> x, ei = torch.randn(3, 2), torch.tensor([[0, 1], [1, 2]])
    >>> hookgnn.from_pyg(Net(), example=(x, ei)).num_rounds
    2

    :param model: a PyTorch Geometric model (a ``torch.nn.Module`` with message-passing layers); wrapped, not
        copied.
    :param example: runs the discovery forward now: a hookgnn ``Graph`` or PyG ``Data`` (one argument), a tuple
        (positional arguments) or a dict (keyword arguments); ``None``: discovery runs on the first call.
    :param inputs: maps a hookgnn ``Graph`` onto the model's call ``(args, kwargs)`` where the default mapping by
        parameter name does not fit.
    """
    from hookgnn.interop import from_pyg as wrap

    return wrap(model, example, inputs)  # type: ignore[arg-type]

__all__ = [
    "PROCESSORS",
    "ActivationCache",
    "FeatureSpec",
    "Field",
    "Graph",
    "HookError",
    "HookHandle",
    "HookPoint",
    "HookedGNN",
    "HookedMLP",
    "HookedMessagePassing",
    "HookedRootModule",
    "ModelOutput",
    "act_name",
    "from_pyg",
]
