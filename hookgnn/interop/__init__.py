"""PyTorch Geometric models in hookgnn (needs the ``[pyg]`` extra).

* :func:`from_pyg`: an existing PyG model, hooked as it is (:mod:`hookgnn.interop.pyg`);
* :func:`to_native`: a PyG layer as the hookgnn processor that computes the same
  function with the same weights (:mod:`hookgnn.interop.native`).
"""

from hookgnn.interop import data as _data  # noqa: F401 - it registers PyG's graph converters
from hookgnn.interop.native import to_native
from hookgnn.interop.pyg import PyGModel, RoundCall, from_pyg
from hookgnn.interop.session import StructureError

__all__ = ["PyGModel", "RoundCall", "StructureError", "from_pyg", "to_native"]
