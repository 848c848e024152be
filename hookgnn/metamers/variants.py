"""Model variants for invariance comparisons: activation, residual update, depth, width.

:class:`VariantMPNN` is the :class:`~hookgnn.nn.MPNN` processor with a chosen
nonlinearity :math:`\\sigma` (ReLU or ELU, in both MLPs and after the update) and an
optional residual update:

.. math::

    m_{uv} = \\mathrm{MLP}^\\sigma_m([z_u, z_v, e_{uv}]) \\qquad a_v = \\max_{u \\to v} m_{uv}
    \\qquad h'_v = [h_v +]\\; \\sigma(\\mathrm{MLP}^\\sigma_u([z_v, a_v]))

Same parameters and hook points as ``MPNN`` (with ReLU and no residual it computes
exactly what ``MPNN`` computes). It is deliberately not in
:data:`hookgnn.nn.PROCESSORS`, so a checkpoint of a variant model cannot be saved as
a plain ``mpnn`` by mistake (``model_config`` refuses it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from hookgnn.models import HookedGNN
from hookgnn.nn import MPNN, HookedMLP
from hookgnn.tasks import Task
from hookgnn.training.config import input_widths, select_spec
from hookgnn.training.data import sample_batch
from hookgnn.training.losses import task_loss

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "elu": nn.ELU}


class VariantMPNN(MPNN):
    """:class:`~hookgnn.nn.MPNN` with ``activation`` (``"relu"``/``"elu"``) and ``residual``.

    >>> layer = VariantMPNN(8, activation="elu", residual=True)
    >>> h = torch.randn(3, 8)
    >>> layer(h, torch.tensor([[0, 1], [1, 2]]), torch.randn(2, 8), x=h).shape
    torch.Size([3, 8])
    """

    def __init__(self, d_hidden: int, activation: str = "relu", residual: bool = False) -> None:
        super().__init__(d_hidden)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        act = ACTIVATIONS[activation]
        self.message_mlp = HookedMLP(5 * d_hidden, d_hidden, d_hidden, axis="edge", activation=act)
        self.update_mlp = HookedMLP(3 * d_hidden, d_hidden, d_hidden, axis="node", activation=act)
        self.act = act()
        self.activation, self.residual = activation, residual

    def update(self, aggr: Tensor, h: Tensor, x: Tensor) -> Tensor:
        out = self.act(self.update_mlp(torch.cat([x, h, aggr], dim=-1)))
        return h + out if self.residual else out


@dataclass(frozen=True)
class Variant:
    """One model of a comparison: ``activation``, ``residual``, ``depth`` (rounds) and
    ``width`` (``d_hidden``)."""

    name: str
    activation: Literal["relu", "elu"] = "relu"
    residual: bool = False
    depth: int = 4
    width: int = 32

    def build(self, task: Task, seed: int = 0) -> HookedGNN:
        """An untrained model for ``task`` (weights from ``seed``, global RNG untouched).

        >>> from hookgnn.tasks import get_task
        >>> Variant("elu", activation="elu", depth=2, width=8).build(get_task("bellman_ford")).max_steps
        2
        """
        node_in, edge_in = input_widths(task)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return HookedGNN(lambda d: VariantMPNN(d, self.activation, self.residual), self.width, node_in, edge_in,
                             spec=select_spec(task, None, hints=False), max_steps=self.depth)


def fit(model: HookedGNN, task: Task, steps: int, *, n: int = 8, p: float = 0.3, batch_size: int = 16,
        lr: float = 3e-3, seed: int = 0) -> float:
    """Train ``model`` on ``task`` outputs (no hints) for ``steps`` Adam steps on fresh
    Erdos-Renyi batches, running ``model.max_steps`` rounds; returns the last loss.

    >>> from hookgnn.tasks import get_task
    >>> bf = get_task("bellman_ford")
    >>> loss = fit(Variant("v", depth=2, width=8).build(bf), bf, steps=2, n=5, batch_size=2)
    >>> loss > 0
    True
    """
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    loss = torch.zeros(())
    for step in range(steps):
        graph = sample_batch(task, batch_size, "erdos_renyi", (n,), (seed, step), sampler_kwargs={"p": p})
        loss, _ = task_loss(model(graph), graph, model.output_spec, hint_weight=0.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    return float(loss.detach())
