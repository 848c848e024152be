"""Subspaces of a node state, the places an interchange intervention swaps.

A subspace of the state space :math:`\\mathbb{R}^d` is given by an orthonormal basis
:math:`U \\in \\mathbb{R}^{d \\times k}` (:meth:`Subspace.basis`). Swapping it from a source
state :math:`s` into a base state :math:`b` gives

.. math:: b' = b + U U^\\top (s - b),

so the component of :math:`b` in the subspace becomes that of :math:`s` and the rest stays.
:func:`whole_state` (:math:`U = I`), :func:`neurons` (columns of :math:`I`) and
:func:`directions` (orthonormalised by QR, e.g. a probe's weight) are fixed;
:class:`Rotation` is learned (distributed alignment search, Geiger et al.): the first ``k``
rows of an orthogonal matrix :math:`R` (``torch.nn.utils.parametrizations.orthogonal``), so
:math:`U = R_{:k}^\\top`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor, nn
from torch.nn.utils.parametrizations import orthogonal


class Subspace(nn.Module):
    """A fixed subspace of a ``d``-dimensional state: an orthonormal basis ``[d, k]`` and a name.

    >>> s = neurons(4, [0, 2])
    >>> s.swap(torch.zeros(1, 4), torch.ones(1, 4)).tolist()
    [[1.0, 0.0, 1.0, 0.0]]
    """

    def __init__(self, basis: Float[Tensor, "d k"], name: str) -> None:
        super().__init__()
        self.index: list[int] | None = None  # set for neurons: the swap is then an exact copy
        if basis.ndim != 2 or basis.shape[1] < 1 or basis.shape[1] > basis.shape[0]:
            raise ValueError(f"a subspace basis is [d, k] with 1 <= k <= d, got shape {list(basis.shape)}")
        gram = basis.T.double() @ basis.double()
        if not torch.allclose(gram, torch.eye(basis.shape[1], dtype=torch.float64), atol=1e-5):
            raise ValueError("a subspace basis needs orthonormal columns (use directions() to orthonormalise)")
        self.register_buffer("_basis", basis.detach().clone())
        self.name = name

    @property
    def dim(self) -> int:
        """``d``, the dimension of the state."""
        return int(self.basis().shape[0])

    def basis(self) -> Float[Tensor, "d k"]:
        """The orthonormal basis :math:`U` of the subspace."""
        return self._basis

    def swap(self, base: Float[Tensor, "m d"], source: Float[Tensor, "m d"]) -> Float[Tensor, "m d"]:
        """:math:`b + U U^\\top (s - b)` row by row (differentiable in the basis)."""
        if base.shape != source.shape or base.shape[-1] != self.dim:
            raise ValueError(f"subspace {self.name!r} swaps rows of width {self.dim}; got base {list(base.shape)} "
                             f"and source {list(source.shape)}")
        if self.index is not None:  # exactly the source's values, no rounding
            out = base.clone()
            out[:, self.index] = source[:, self.index]
            return out
        u = self.basis().to(base)
        return base + ((source - base) @ u) @ u.T

    def extra_repr(self) -> str:
        return f"name={self.name!r}, d={self.dim}, k={self.basis().shape[1]}"


def whole_state(d: int) -> Subspace:
    """The whole state (:math:`U = I_d`): the intervention replaces the node's state.

    >>> whole_state(3).basis().shape
    torch.Size([3, 3])
    """
    return neurons(d, range(d), name="state")


def neurons(d: int, index: Sequence[int], name: str | None = None) -> Subspace:
    """The neurons (channels) ``index`` of a ``d``-dimensional state (their values are copied exactly).

    >>> neurons(4, [1]).name
    'neurons[1]'
    """
    index = list(index)
    if not index or len(set(index)) != len(index) or min(index) < 0 or max(index) >= d:
        raise ValueError(f"neurons takes distinct channels in 0 .. {d - 1}, got {index}")
    sub = Subspace(torch.eye(d)[:, index], f"neurons{index}" if name is None else name)
    sub.index = index
    return sub


def directions(vectors: Float[Tensor, "k d"], name: str = "direction") -> Subspace:
    """The span of the rows of ``vectors`` (e.g. a linear probe's weight), orthonormalised by QR.

    >>> directions(torch.tensor([[3.0, 4.0]])).basis().flatten().abs().tolist()
    [0.6000000238418579, 0.800000011920929]
    """
    if vectors.ndim == 1:
        vectors = vectors[None]
    if vectors.ndim != 2 or not torch.isfinite(vectors).all():
        raise ValueError(f"directions takes finite rows [k, d], got shape {list(vectors.shape)}")
    q, r = torch.linalg.qr(vectors.detach().double().T)
    if bool((r.diagonal().abs() <= 1e-10 * r.abs().max().clamp_min(1e-300)).any()):
        raise ValueError(f"the {vectors.shape[0]} directions of {name!r} are linearly dependent (or zero)")
    return Subspace(q.to(vectors.dtype), name)


class Rotation(Subspace):
    """A learned subspace (DAS): the first ``k`` rows of an orthogonal ``[d, d]`` matrix.

    ``torch.manual_seed`` decides the start; :func:`hookgnn.causal.das.train_das` trains it.

    >>> _ = torch.manual_seed(0)
    >>> r = Rotation(4, 1)
    >>> bool(torch.allclose(r.basis().T @ r.basis(), torch.eye(1), atol=1e-5))
    True
    """

    def __init__(self, d: int, k: int, name: str = "das") -> None:
        nn.Module.__init__(self)
        self.index = None
        if not 1 <= k <= d:
            raise ValueError(f"a rotation subspace has 1 <= k <= d = {d} dimensions, got k={k}")
        self.rotate = orthogonal(nn.Linear(d, d, bias=False))
        self.k, self.name = k, name

    def basis(self) -> Float[Tensor, "d k"]:
        return self.rotate.weight[: self.k].T

    def frozen(self) -> Subspace:
        """The current subspace as a fixed :class:`Subspace` (no parameters)."""
        with torch.no_grad():
            return Subspace(self.basis().clone(), self.name)
