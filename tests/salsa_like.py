"""A SALSA-CLRS-like network and batches for tests (written here from SALSA-CLRS's description).

SALSA-CLRS (Minder et al. 2023) is what most PyTorch neural-algorithmic-reasoning users
start from. Its ``EncodeProcessDecode`` takes one PyG batch, ``forward(batch)``, whose
list attributes ``inputs`` / ``outputs`` / ``hints`` name the tensor attributes of each
stage; it encodes every input with its own ``Linear`` and sums them in place
(``hidden += encoding``), then runs a processor (a ``GINConv`` on ``[input, hidden]``,
a graph-mode ``LayerNorm`` and a ``GRUCell``) for a number of steps and decodes
``[input, hidden]`` per output. :class:`SalsaLike` does the same at test scale.

API (import as ``from salsa_like import ...`` from a test module):

* ``SalsaLike(d=8, steps=3, seed=0)``: the network (eval mode); ``model(batch)`` returns
  ``{"d": Tensor[N]}`` (one output per name in ``batch.outputs``); it reads ``batch.s``
  and ``batch.pos`` (node scalars), ``batch.edge_index`` and ``batch.batch``, never
  ``x``, ``edge_attr`` or ``edge_weight``; ``model.supports_edge_attr`` is ``False``
  and ``model.has_edge_weight()`` is ``False`` (attributes third-party helpers read).
* ``salsa_batch(sizes=(4, 5), seed=0)``: a PyG ``Batch`` of path-plus-chords graphs with
  node fields ``s``, ``pos``, ``d`` (the target), a hint ``pi_h`` ``[N, T]``, an unused
  ``edge_weight``, a graph field ``length``, and the lists ``inputs=["s", "pos"]``,
  ``outputs=["d"]``, ``hints=["pi_h"]`` (set after collating, as SALSA's collater does).
* ``salsa_pair(sizes=(4, 5), seed=0)``: ``(clean, corrupted)`` batches with the same
  structure and different ``s`` and ``pos``.
* ``salsa_inputs(graph)``: ``((batch,), {})`` for ``from_pyg(model, inputs=salsa_inputs)``:
  the batch the model reads, rebuilt from a hookgnn ``Graph``'s fields by hand, with the
  lists set explicitly (a route that does not depend on ``Graph.meta``).
* ``d_error(out, graph)``: a metric, the mean squared error of ``out["d"]`` per graph.
* ``salsa_linears(model)``: ``{path: Linear}`` of every ``nn.Linear`` in the model.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GINConv, LayerNorm


class SalsaLike(nn.Module):
    """Encode (a ``Linear`` per input, summed in place), process (GIN, LayerNorm, GRU) ``steps``
    times, decode ``[input, hidden]`` with a ``Linear`` per output."""

    supports_edge_attr = False

    def __init__(self, d: int = 8, steps: int = 3, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.steps = steps
        self.encoder = nn.ModuleDict({"s": nn.Linear(1, d), "pos": nn.Linear(1, d)})
        mlp = nn.Sequential(nn.Linear(2 * d, d), nn.ReLU(), nn.Linear(d, d))
        self.core = GINConv(mlp, train_eps=True)
        self.norm = LayerNorm(d, mode="graph")
        self.gru = nn.GRUCell(d, d)
        self.decoder = nn.ModuleDict({"d": nn.Linear(2 * d, 1)})
        self.eval()

    def has_edge_weight(self) -> bool:
        """SALSA's ``Processor.has_edge_weight``: whether the core takes edge weights."""
        return False

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        hidden = None
        for key in batch.inputs:
            encoding = self.encoder[key](batch[key].unsqueeze(-1))
            if hidden is None:
                hidden = encoding
            else:
                hidden += encoding  # in place, as SALSA's Encoder does
        input_hidden = hidden
        for _ in range(self.steps):
            last = hidden
            out = self.core(torch.cat([input_hidden, hidden], dim=-1), batch.edge_index)
            out = self.norm(out, batch=batch.batch)
            hidden = self.gru(out, last)
        both = torch.cat([input_hidden, hidden], dim=-1)
        return {k: self.decoder[k](both).squeeze(-1) for k in batch.outputs}


def _graph(n: int, gen: torch.Generator, steps: int) -> Data:
    src = list(range(n - 1)) + [0]
    dst = list(range(1, n)) + [n - 1]
    ei = torch.tensor([src + dst, dst + src])
    return Data(edge_index=ei, num_nodes=n, s=(torch.rand(n, generator=gen) < 0.5).float(),
                pos=torch.arange(n, dtype=torch.float32) / n, d=torch.randn(n, generator=gen),
                pi_h=torch.randn(n, steps, generator=gen), edge_weight=torch.rand(ei.shape[1], generator=gen),
                length=torch.tensor([steps]))


def salsa_batch(sizes: tuple[int, ...] = (4, 5), seed: int = 0) -> Batch:
    """A SALSA-style batch (see the module doc)."""
    gen = torch.Generator().manual_seed(seed)
    batch = Batch.from_data_list([_graph(n, gen, 3) for n in sizes])
    batch.inputs, batch.outputs, batch.hints = ["s", "pos"], ["d"], ["pi_h"]
    return batch


def salsa_pair(sizes: tuple[int, ...] = (4, 5), seed: int = 0) -> tuple[Batch, Batch]:
    """``(clean, corrupted)``: the same graphs and targets, different ``s`` and ``pos``."""
    clean = salsa_batch(sizes, seed)
    corrupted = salsa_batch(sizes, seed)
    gen = torch.Generator().manual_seed(seed + 1000)
    corrupted.s = 1.0 - clean.s
    corrupted.pos = torch.rand(clean.pos.shape, generator=gen)
    return clean, corrupted


def salsa_inputs(graph: object) -> tuple[tuple[Batch], dict]:
    """The call ``model(batch)`` for a hookgnn ``Graph`` (see the module doc)."""
    batch = Batch(edge_index=graph.edge_index, batch=graph.batch, ptr=graph.ptr,  # type: ignore[attr-defined]
                  **{k: f.value for k, f in graph.fields.items()})  # type: ignore[attr-defined]
    batch.inputs, batch.outputs, batch.hints = ["s", "pos"], ["d"], ["pi_h"]
    return (batch,), {}


def d_error(out: dict[str, Tensor], graph: object) -> Tensor:
    """Mean squared error of ``out["d"]`` against the field ``d``, one value per graph."""
    err = (out["d"] - graph["d"]) ** 2  # type: ignore[index]
    batch = graph.batch  # type: ignore[attr-defined]
    n = int(batch.max()) + 1
    return torch.zeros(n, dtype=err.dtype).index_add_(0, batch, err) / torch.bincount(batch, minlength=n).to(err.dtype)


def salsa_linears(model: nn.Module) -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` of ``model`` by its path."""
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}
