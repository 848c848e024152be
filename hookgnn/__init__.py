"""hookgnn: hooks, caches, patching and attribution for graph neural networks.

>>> import torch, hookgnn
>>> model = hookgnn.HookedGNN("mpnn", d_hidden=8, node_in=1, max_steps=2)
>>> graph = hookgnn.Graph(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
>>> _, cache = model.run_with_cache(graph)
>>> sorted(k for k in cache if k.startswith("layers.0.hook"))
['layers.0.hook_aggregation', 'layers.0.hook_message', 'layers.0.hook_src', 'layers.0.hook_update', 'layers.0.hook_update_pre']
"""

from hookgnn import _moved
from hookgnn.cache import ActivationCache
from hookgnn.graph import Field, Graph
from hookgnn.hooks import HookedRootModule, HookError, HookHandle, HookPoint
from hookgnn.models import HookedGNN, ModelOutput
from hookgnn.names import act_name
from hookgnn.nn import PROCESSORS, HookedMessagePassing, HookedMLP
from hookgnn.spec import FeatureSpec

# The PyTorch Geometric adapter registers its Graph converters and how the estimators read
# PyG layers (hookgnn.graph, hookgnn.rounds); it imports torch_geometric only when used.
import hookgnn.interop  # noqa: E402,F401  (isort: skip)

_moved.install()  # the module paths of 0.1 that moved, as aliases that warn (hookgnn._moved)

__version__ = "0.1.0"


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
