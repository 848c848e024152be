"""Graph: a batch of graphs stored as one disjoint union.

A :class:`Graph` holds node features ``x`` [N, F], ``edge_index`` [2, E] (row 0 is the
source, row 1 the target: messages flow source -> target), optional edge features
``edge_attr`` [E, Fe] and graph features ``graph_attr`` [G, Fg], and ``ptr`` [G + 1]:
graph ``i`` owns nodes ``ptr[i]:ptr[i+1]``. Extra named tensors (task inputs, outputs,
hints) live in ``fields`` with their location, optionally with a leading time axis.
Attributes that are not tensors (SALSA-CLRS's lists ``inputs`` / ``outputs`` / ``hints``
naming the fields of each stage) live in ``meta``, carried along unchanged.

Empty graphs, isolated nodes, self-loops and multi-edges are all valid; anything
malformed raises ``ValueError`` naming the problem at construction.

Dtypes: ``x``, ``edge_attr`` and ``graph_attr`` are floating point (float16, bfloat16,
float32 or float64) and share one dtype, which the graph keeps as given (no silent
casts). Models check that it matches their parameters and name both dtypes when it does
not; ``graph.to(torch.float32)`` converts (numpy arrays arrive as float64). Features and
floating fields must be finite (no NaN, no ±inf); ``edge_index``, ``ptr`` and ``batch``
must be integer tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from hookgnn.fields import (
    LOCATIONS,
    Field,
    Location,
    cat_fields,
    check_edge_index,
    check_features,
    check_field,
    make_ptr,
    same_meta,
)

if TYPE_CHECKING:
    import networkx as nx

class Graph:
    """A batch of graphs (a disjoint union) with features and named fields.

    Shapes: ``x`` [N, F] float, ``edge_index`` [2, E] int, ``edge_attr`` [E, Fe] float,
    ``graph_attr`` [G, Fg] float, and either ``ptr`` [G + 1] (node offsets; allows empty
    graphs anywhere) or ``batch`` [N] (sorted graph id of each node). With neither, the
    batch holds one graph. ``meta``: attributes of the whole batch that are not tensors
    (names, lists of names), kept as they are by every copy, part and union.

    >>> g = Graph(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> g.num_nodes, g.num_edges, g.num_graphs
    (3, 2, 1)
    >>> b = Graph.collate([g, g])
    >>> b.edge_index.tolist(), b.ptr.tolist()
    ([[0, 1, 3, 4], [1, 2, 4, 5]], [0, 3, 6])

    :param x: node features ``[N, F]``, float.
    :param edge_index: edges ``[2, E]``, int, source row 0 and target row 1 (local node numbers of the batch).
    :param edge_attr: edge features ``[E, Fe]``, float, or ``None``.
    :param graph_attr: graph features ``[G, Fg]``, float, or ``None``.
    :param ptr: node offsets ``[G + 1]`` of the graphs of the batch (allows empty graphs anywhere).
    :param batch: sorted graph id of each node ``[N]`` (instead of ``ptr``); with neither, one graph.
    :param fields: named task features (:class:`~hookgnn.fields.Field`: node, edge or graph values, hints with a
        time axis).
    :param meta: attributes of the whole batch that are not tensors (names, lists of names), kept by every copy,
        part and union.
    """

    def __init__(
        self,
        x: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor | None = None,
        graph_attr: Tensor | None = None,
        ptr: Tensor | None = None,
        batch: Tensor | None = None,
        fields: Mapping[str, Field] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        # The constructor is the validation boundary: arguments are plain tensors,
        # checked below with errors that name the problem (shapes are in the class doc).
        check_features("x", x, None)
        self.x = x
        num_nodes = x.shape[0]
        self.edge_index = check_edge_index(edge_index, num_nodes)
        self.ptr = make_ptr(ptr, batch, num_nodes, x.device)
        self.batch = torch.repeat_interleave(
            torch.arange(self.num_graphs, device=x.device), self.ptr.diff()
        )
        cross = self.batch[self.edge_index[0]] != self.batch[self.edge_index[1]]
        if bool(cross.any()):
            e = int(cross.nonzero()[0, 0])
            raise ValueError(f"edge {e} ({self.edge_index[0, e]} -> {self.edge_index[1, e]}) joins two graphs")
        check_features("edge_attr", edge_attr, self.num_edges)
        check_features("graph_attr", graph_attr, self.num_graphs)
        for name, t in (("edge_attr", edge_attr), ("graph_attr", graph_attr)):
            if t is not None and t.dtype != x.dtype:
                raise ValueError(f"{name} has dtype {t.dtype} but x has {x.dtype}: node, edge and graph features "
                                 "must share one floating dtype (convert with .to(x.dtype))")
        self.edge_attr = edge_attr
        self.graph_attr = graph_attr
        self.fields: dict[str, Field] = dict(fields or {})
        for name, f in self.fields.items():
            check_field(name, f, self.count)
        self.meta: dict[str, Any] = dict(meta or {})
        for name, value in self.meta.items():
            if isinstance(value, Tensor):
                raise ValueError(f"meta[{name!r}] is a tensor; tensors belong in fields (with their location)")

    # ------------------------------------------------------------------ sizes
    @property
    def num_nodes(self) -> int:
        return self.x.shape[0]

    @property
    def num_edges(self) -> int:
        return self.edge_index.shape[1]

    @property
    def num_graphs(self) -> int:
        return self.ptr.shape[0] - 1

    @property
    def device(self) -> torch.device:
        return self.x.device

    @property
    def edge_batch(self) -> Int[Tensor, " edge"]:
        """The graph of each edge."""
        return self.batch[self.edge_index[0]]

    def count(self, location: Location) -> int:
        """Number of nodes, edges or graphs in the batch."""
        return {"node": self.num_nodes, "edge": self.num_edges, "graph": self.num_graphs}[location]

    def owner(self, location: Location) -> Int[Tensor, " item"]:
        """For every node, edge or graph, the index of the graph it belongs to."""
        if location == "node":
            return self.batch
        if location == "edge":
            return self.edge_batch
        return torch.arange(self.num_graphs, device=self.device)

    def __getitem__(self, name: str) -> Tensor:
        """The value of a named field: ``graph["pi"]``."""
        try:
            return self.fields[name].value
        except KeyError:
            raise KeyError(f"graph has no field {name!r}; fields: {sorted(self.fields)}") from None

    def with_fields(self, **fields: Field) -> Graph:
        """A copy of this graph with fields added or replaced."""
        return self.replace(fields={**self.fields, **fields})

    def replace(self, **changes: Any) -> Graph:
        """A copy with some constructor arguments changed (``x``, ``edge_attr``, ...)."""
        kwargs: dict[str, Any] = dict(
            x=self.x, edge_index=self.edge_index, edge_attr=self.edge_attr,
            graph_attr=self.graph_attr, ptr=self.ptr, fields=self.fields, meta=self.meta,
        )
        kwargs.update(changes)
        if "batch" in changes:
            kwargs.pop("ptr")
        return Graph(**kwargs)

    def to(self, target: torch.device | str | torch.dtype) -> Graph:
        """Move every tensor to a device, or cast the features (``x``, ``edge_attr``,
        ``graph_attr``) to a floating dtype (indices and fields keep theirs).

        >>> Graph(x=torch.zeros(2, 1, dtype=torch.float64), edge_index=torch.zeros(2, 0, dtype=torch.long)).to(torch.float32).x.dtype
        torch.float32
        """
        if isinstance(target, torch.dtype):
            if not target.is_floating_point:
                raise ValueError(f"Graph.to(dtype) casts the features and needs a floating dtype, got {target}")
            cast = lambda t: None if t is None else t.to(target)  # noqa: E731
            return self.replace(x=cast(self.x), edge_attr=cast(self.edge_attr), graph_attr=cast(self.graph_attr))
        return Graph(
            x=self.x.to(target),
            edge_index=self.edge_index.to(target),
            edge_attr=None if self.edge_attr is None else self.edge_attr.to(target),
            graph_attr=None if self.graph_attr is None else self.graph_attr.to(target),
            ptr=self.ptr.to(target),
            fields={k: f.to(target) for k, f in self.fields.items()},
            meta=self.meta,
        )

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the features (``x``, ``edge_attr``, ``graph_attr`` share it)."""
        return self.x.dtype

    def __repr__(self) -> str:
        extra = "".join(f", {k}={tuple(f.value.shape)}" for k, f in self.fields.items())
        return (
            f"Graph(num_graphs={self.num_graphs}, x={tuple(self.x.shape)}, "
            f"edge_index={tuple(self.edge_index.shape)}"
            f"{'' if self.edge_attr is None else f', edge_attr={tuple(self.edge_attr.shape)}'}"
            f"{'' if self.graph_attr is None else f', graph_attr={tuple(self.graph_attr.shape)}'}{extra})"
        )

    # --------------------------------------------------------- batch / split
    @staticmethod
    def collate(graphs: Sequence[Graph]) -> Graph:
        """Stack graphs into one disjoint union; node indices of graph i are offset.

        Time-major fields with different lengths are padded by repeating their last
        step (a hint trajectory ends in its final state). ``meta`` must be equal in every
        graph (``ValueError`` naming the key otherwise) and is kept.
        """
        if not graphs:
            raise ValueError("Graph.collate needs at least one graph")
        first = graphs[0]
        for i, g in enumerate(graphs):
            for attr in ("edge_attr", "graph_attr"):
                if (getattr(g, attr) is None) != (getattr(first, attr) is None):
                    raise ValueError(f"graph {i} {'has' if getattr(g, attr) is not None else 'lacks'} {attr}, graph 0 does not")
            if set(g.fields) != set(first.fields):
                raise ValueError(f"graph {i} has fields {sorted(g.fields)}, graph 0 has {sorted(first.fields)}")
            for key in set(g.meta) | set(first.meta):
                if key not in g.meta or key not in first.meta or not same_meta(g.meta[key], first.meta[key]):
                    raise ValueError(f"graph {i} and graph 0 differ in meta[{key!r}]; a union keeps one value of "
                                     "each meta attribute")
            if g.dtype != first.dtype or g.device != first.device:
                raise ValueError(f"graph {i} has features of {g.dtype} on {g.device}, graph 0 of {first.dtype} on "
                                 f"{first.device}; convert them first (Graph.to)")
        offsets = torch.tensor([0] + [g.num_nodes for g in graphs], device=first.device).cumsum(0)
        edge_index = torch.cat([g.edge_index + offsets[i] for i, g in enumerate(graphs)], dim=1)
        ptr = torch.cat([offsets[:1]] + [g.ptr[1:] + offsets[i] for i, g in enumerate(graphs)])
        cat_or_none = lambda attr: None if getattr(first, attr) is None else torch.cat(  # noqa: E731
            [getattr(g, attr) for g in graphs]
        )
        fields = {name: cat_fields([g.fields[name] for g in graphs], name) for name in first.fields}
        # Every part was validated when its graph was built, and offsetting keeps each
        # edge inside its graph, so the union is valid without checking it again.
        union = object.__new__(Graph)
        union.x = torch.cat([g.x for g in graphs])
        union.edge_index = edge_index
        union.edge_attr = cat_or_none("edge_attr")
        union.graph_attr = cat_or_none("graph_attr")
        union.ptr = ptr
        union.batch = torch.repeat_interleave(torch.arange(union.num_graphs, device=first.device), ptr.diff())
        union.fields = fields
        union.meta = dict(first.meta)
        return union

    def split(self) -> list[Graph]:
        """The inverse of :meth:`collate`: one single-graph :class:`Graph` per graph.

        One pass over the batch (edges grouped by graph once), however many graphs it holds.
        """
        order = torch.argsort(self.edge_batch, stable=True)
        edge_ptr = torch.cat([self.ptr.new_zeros(1), torch.bincount(self.edge_batch, minlength=self.num_graphs).cumsum(0)])
        by_location = {"node": (None, self.ptr.tolist()), "edge": (order, edge_ptr.tolist()),
                       "graph": (None, list(range(self.num_graphs + 1)))}
        grouped = {k: (f, f.value if by_location[f.location][0] is None
                       else f.value.index_select(f.item_dim, by_location[f.location][0])) for k, f in self.fields.items()}
        ei = self.edge_index[:, order]
        ea = None if self.edge_attr is None else self.edge_attr[order]
        nodes, edges = by_location["node"][1], by_location["edge"][1]
        out = []
        for i in range(self.num_graphs):
            def cut(f: Field, value: Tensor) -> Field:
                lo, hi = by_location[f.location][1][i], by_location[f.location][1][i + 1]
                return Field(value.narrow(f.item_dim, lo, hi - lo), f.location, f.time)

            part = object.__new__(Graph)  # the rows of a valid graph: valid, no need to check again
            part.x = self.x[nodes[i]:nodes[i + 1]]
            part.edge_index = ei[:, edges[i]:edges[i + 1]] - nodes[i]
            part.edge_attr = None if ea is None else ea[edges[i]:edges[i + 1]]
            part.graph_attr = None if self.graph_attr is None else self.graph_attr[i:i + 1]
            part.ptr = self.ptr.new_tensor([0, nodes[i + 1] - nodes[i]])
            part.batch = self.batch.new_zeros(nodes[i + 1] - nodes[i])
            part.fields = {k: cut(f, value) for k, (f, value) in grouped.items()}
            part.meta = dict(self.meta)
            out.append(part)
        return out

    def __iter__(self) -> Iterator[Graph]:
        return iter(self.split())

    def __len__(self) -> int:
        return self.num_graphs

    def graph(self, i: int) -> Graph:
        """Graph ``i`` of the batch, with node indices starting at 0."""
        if not -self.num_graphs <= i < self.num_graphs:
            raise IndexError(f"graph index {i} out of range for a batch of {self.num_graphs}")
        i %= self.num_graphs
        lo, hi = int(self.ptr[i]), int(self.ptr[i + 1])
        masks = {"node": self.batch == i, "edge": self.edge_batch == i,
                 "graph": torch.arange(self.num_graphs, device=self.device) == i}
        fields = {k: Field(f.value[(slice(None),) * f.item_dim + (masks[f.location],)], f.location, f.time)
                  for k, f in self.fields.items()}
        return Graph(
            x=self.x[lo:hi],
            edge_index=self.edge_index[:, masks["edge"]] - lo,
            edge_attr=None if self.edge_attr is None else self.edge_attr[masks["edge"]],
            graph_attr=None if self.graph_attr is None else self.graph_attr[i : i + 1],
            fields=fields,
            meta=self.meta,
        )

    # ------------------------------------------------------------ conversion
    # PyTorch Geometric's conversions are registered by hookgnn.interop (register_converter).
    @staticmethod
    def from_networkx(
        g: nx.Graph,
        node_attrs: Sequence[str] = (),
        edge_attrs: Sequence[str] = (),
    ) -> Graph:
        """Build a single graph from networkx; nodes are numbered in ``g.nodes`` order.

        Undirected graphs give both directions of each edge. Named numeric attributes
        become the columns of ``x`` / ``edge_attr`` (``x`` is [N, 0] when none are named).
        """
        nodes = list(g.nodes)
        pos = {n: i for i, n in enumerate(nodes)}
        src, dst, eattr = [], [], []
        for u, v, data in g.edges(data=True):
            pairs = [(u, v)] if g.is_directed() or u == v else [(u, v), (v, u)]
            for a, b in pairs:
                src.append(pos[a])
                dst.append(pos[b])
                eattr.append([float(data[k]) for k in edge_attrs])
        x = torch.tensor([[float(g.nodes[n][k]) for k in node_attrs] for n in nodes]).reshape(len(nodes), len(node_attrs))
        return Graph(
            x=x,
            edge_index=torch.tensor([src, dst], dtype=torch.long).reshape(2, -1),
            edge_attr=torch.tensor(eattr).reshape(len(src), len(edge_attrs)) if edge_attrs else None,
        )

    def to_networkx(self) -> nx.MultiDiGraph:
        """A networkx ``MultiDiGraph`` of the whole batch (edge key = edge id)."""
        import networkx as nx

        out = nx.MultiDiGraph()
        out.add_nodes_from(range(self.num_nodes))
        for e, (u, v) in enumerate(self.edge_index.t().tolist()):
            out.add_edge(u, v, key=e)
        return out

    @staticmethod
    def from_pyg(data: Any) -> Graph:
        """Convert a PyTorch Geometric ``Data`` or ``Batch``, keeping every tensor attribute
        (``y``, masks, ...) as a :class:`Field` and every other attribute (lists of names,
        ...) in ``meta`` (see :func:`hookgnn.interop.data.graph_from_pyg`).

        >>> from torch_geometric.data import Data
        >>> d = Data(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]), y=torch.tensor([0., 1., 2.]))
        >>> Graph.from_pyg(d).fields["y"].location
        'node'
        """
        return converter("from_pyg")(data)

    def to_pyg(self) -> Any:
        """Convert to a PyTorch Geometric ``Batch`` of one ``Data`` per graph (requires
        ``torch_geometric``); fields without a time axis and ``meta`` become attributes."""
        return converter("to_pyg")(self)


#: Conversions to and from other libraries' graphs, by name, registered by their adapters
#: (:mod:`hookgnn.interop` registers ``"from_pyg"``, ``"to_pyg"`` and ``"to_pyg_union"``).
_CONVERTERS: dict[str, Callable[..., Any]] = {}


def register_converter(name: str, fn: Callable[..., Any]) -> None:
    """Make ``fn`` the conversion called ``name`` (``Graph.from_pyg`` calls ``"from_pyg"``, ...)."""
    _CONVERTERS[name] = fn


def converter(name: str) -> Callable[..., Any]:
    """The registered conversion ``name``; ``ImportError`` when no adapter registered it."""
    fn = _CONVERTERS.get(name)
    if fn is None:
        raise ImportError(f"no graph conversion {name!r} is registered (hookgnn.interop registers PyTorch "
                          "Geometric's on import)")
    return fn
