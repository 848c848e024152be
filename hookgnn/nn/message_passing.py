"""HookedMessagePassing: message -> aggregate -> update, with a hook point on each.

One round of message passing on a graph with edges :math:`u \\to v`:

.. math::

    m_{uv} = \\phi(h_u, h_v, e_{uv}) \\qquad
    a_v = \\bigoplus_{u \\,:\\, u \\to v} m_{uv} \\qquad
    h'_v = \\psi(a_v, h_v)

The state of the source node as read by each edge, ``h[src]``, passes through
``hook_src`` (edge axis): patching row ``e`` there changes what edge ``e`` carries
and nothing else, which is how single messages are path-patched.

A subclass writes ``message`` (returning ``[E, d]``) and ``update`` (returning
``[N, d]``) and picks ``aggr`` (``"max"``, ``"min"``, ``"sum"``, ``"mean"``) or
overrides ``aggregate``. The base class wraps the three results in ``hook_message``
(edge axis), ``hook_aggregation`` and ``hook_update`` (node axis).

``message`` always receives ``h_src``, ``h_dst`` and ``edge_attr``; it also receives
``x_src``, ``x_dst`` (encoded inputs of this round), ``graph_attr`` (per edge),
``edge_index`` and ``num_nodes`` if its signature names them. ``update`` always receives
``aggr`` and ``h``, and ``x`` and ``graph_attr`` (per node) if it names them.

**Messages from node tensors.** A subclass may also write ``message_from_nodes(h,
h_src, edge_index, edge_attr, x)``: the same messages as ``message``, computed from the
node tensors ``h`` and ``x`` (e.g. projecting nodes before gathering them to edges,
:mod:`hookgnn.nn.projection`, which drops the ``[E, k d]`` concatenation). The rule:

* when ``hook_src`` has a hook attached (forward or backward, including a cache or a
  patch), ``h_src`` is a :class:`~hookgnn.nn.projection.SourceRows`: ``h[src]`` before
  and after ``hook_src``; the method must read ``h_u`` through it
  (:func:`~hookgnn.nn.projection.source_block`), so that patches and gradients at
  ``hook_src`` stay exact, and hooks that change nothing change no bit of the result;
* otherwise ``h_src`` is ``None``, ``h[src]`` is never built and ``hook_src`` does not
  fire; every other hook point inside the message still fires with the values
  ``message`` gives it.

It is used only when the class that defines it is the class that defines ``message`` or
a subclass of it, so a subclass that overrides ``message`` alone keeps its own messages.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from jaxtyping import Float, Int
from torch import Tensor, nn

from hookgnn.hooks import HookPoint
from hookgnn.nn.projection import SourceRows, gather_rows
from hookgnn.ops import REDUCTIONS, Reduce, scatter

_MESSAGE_OPTIONAL = ("x_src", "x_dst", "graph_attr", "edge_index", "num_nodes")
_UPDATE_OPTIONAL = ("x", "graph_attr")


def _defined_at(cls: type, name: str) -> int:
    """Position in ``cls.__mro__`` of the first class that defines ``name``."""
    return next((i for i, c in enumerate(cls.__mro__) if name in c.__dict__), len(cls.__mro__))


def _accepted(fn: Any, names: tuple[str, ...]) -> frozenset[str]:
    params = inspect.signature(fn).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return frozenset(names)
    return frozenset(n for n in names if n in params)


class HookedMessagePassing(nn.Module):
    """Base class of hookgnn processors (see the module docstring).

    >>> import torch
    >>> class MaxOfNeighbours(HookedMessagePassing):
    ...     def message(self, h_src, h_dst, edge_attr):
    ...         return h_src
    ...     def update(self, aggr, h):
    ...         return aggr
    >>> layer = MaxOfNeighbours(aggr="max")
    >>> layer(torch.tensor([[1.], [5.], [3.]]), torch.tensor([[0, 1, 2], [2, 2, 0]])).flatten().tolist()
    [3.0, 0.0, 5.0]

    :param aggr: how ``aggregate`` reduces the messages into a node: ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``.
    """

    _message_args: ClassVar[frozenset[str]] = frozenset()
    _update_args: ClassVar[frozenset[str]] = frozenset()
    #: Whether ``forward`` computes messages with ``message_from_nodes`` (derived, see the module docstring).
    _from_nodes: ClassVar[bool] = False

    # What exact local recomputation (hookgnn.attribution.local, AtP*) needs to know; a
    # subclass inherits all of it and overrides only what differs.
    #: How ``forward``'s arguments are indexed: by node, by edge, the edge index, or passed as they are.
    input_roles: ClassVar[dict[str, str]] = {"h": "node", "edge_index": "edge_index", "edge_attr": "edge",
                                             "x": "node", "graph_attr": "pass", "batch": "node"}
    #: The argument that carries the node state.
    state_arg: ClassVar[str] = "h"
    #: 1: the output at node v depends on v's in-edges and their ends only; 2: also on the
    #: in-edges of v's in-neighbours (e.g. triplet messages over 2-paths).
    receptive_hops: ClassVar[int] = 1
    #: Whether ``message`` row e depends on row e of its inputs only, so that one call with
    #: every ``hook_src`` row patched gives every single-message patch at once. Derived:
    #: true unless ``message`` reads ``edge_index`` or ``num_nodes`` (set it explicitly
    #: when those are used row by row).
    rowwise_message: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._message_args = _accepted(cls.message, _MESSAGE_OPTIONAL)
        cls._update_args = _accepted(cls.update, _UPDATE_OPTIONAL)
        cls._from_nodes = _defined_at(cls, "message_from_nodes") <= _defined_at(cls, "message") and (
            cls.message_from_nodes is not HookedMessagePassing.message_from_nodes)
        if "rowwise_message" not in cls.__dict__:
            cls.rowwise_message = not ({"edge_index", "num_nodes"} & cls._message_args)

    def update_rows(self, aggr: Tensor, h: Tensor, x: Tensor | None, graph_attr: Tensor | None, batch: Tensor | None,
                    rows: Tensor) -> Tensor:
        """``update`` at some nodes only: ``aggr`` and ``h`` are already those rows; the
        optional inputs are the full tensors of the round, indexed here by ``rows``."""
        extra: dict[str, Any] = {"x": None if x is None else x[rows]}
        if "graph_attr" in self._update_args:
            extra["graph_attr"] = graph_attr[batch[rows]]  # type: ignore[index]
        return self.update(aggr, h, **{k: extra[k] for k in self._update_args})

    def __init__(self, aggr: Reduce = "max") -> None:
        super().__init__()
        if aggr not in REDUCTIONS:
            raise ValueError(f"unknown aggregation {aggr!r}; expected one of {REDUCTIONS}")
        self.aggr: Reduce = aggr
        self.hook_src = HookPoint("edge")
        self.hook_message = HookPoint("edge")
        self.hook_aggregation = HookPoint("node")
        self.hook_update = HookPoint("node")

    def message(self, h_src: Tensor, h_dst: Tensor, edge_attr: Tensor | None) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define message(h_src, h_dst, edge_attr)")

    def message_from_nodes(
        self,
        h: Float[Tensor, "node d"],
        h_src: SourceRows | None,
        edge_index: Int[Tensor, "2 edge"],
        edge_attr: Float[Tensor, "edge d_edge"] | None,
        x: Float[Tensor, "node d_x"] | None,
    ) -> Float[Tensor, "edge d_msg"]:
        """Optional: ``message``'s values computed from node tensors (see the module
        docstring for when it runs and what it must keep exact)."""
        raise NotImplementedError(f"{type(self).__name__} does not define message_from_nodes")

    def aggregate(self, msg: Float[Tensor, "edge *d"], index: Int[Tensor, " edge"], num_nodes: int) -> Float[Tensor, "node *d"]:
        """Reduce messages onto their target nodes with ``self.aggr``."""
        return scatter(msg, index, num_nodes, self.aggr)

    def update(self, aggr: Tensor, h: Tensor) -> Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define update(aggr, h)")

    def forward(
        self,
        h: Float[Tensor, "node d"],
        edge_index: Int[Tensor, "2 edge"],
        edge_attr: Float[Tensor, "edge d_edge"] | None = None,
        x: Float[Tensor, "node d_x"] | None = None,
        graph_attr: Float[Tensor, "graph d_graph"] | None = None,
        batch: Int[Tensor, " node"] | None = None,
    ) -> Float[Tensor, "node d_out"]:
        src, dst = edge_index
        num_nodes = h.shape[0]
        wanted = self._message_args
        if "graph_attr" in wanted or "graph_attr" in self._update_args:
            if graph_attr is None or batch is None:
                raise ValueError(f"{type(self).__name__} uses graph_attr: pass graph_attr and batch")
        if self._from_nodes:
            read: SourceRows | None = None
            if self.hook_src.has_hooks:
                rows = gather_rows(h, src)
                read = SourceRows(rows, self.hook_src(rows))  # [edge, d]: h_u as read by edge u -> v
            msg = self.message_from_nodes(h, read, edge_index, edge_attr, x)
        else:
            optional: dict[str, Any] = {"edge_index": edge_index, "num_nodes": num_nodes}
            if "x_src" in wanted:
                optional["x_src"] = None if x is None else gather_rows(x, src)
            if "x_dst" in wanted:
                optional["x_dst"] = None if x is None else gather_rows(x, dst)
            if "graph_attr" in wanted:
                optional["graph_attr"] = gather_rows(graph_attr, gather_rows(batch, src))  # type: ignore[arg-type]
            h_src = self.hook_src(gather_rows(h, src))  # [edge, d]: h_u as read by edge u -> v
            msg = self.message(h_src, gather_rows(h, dst), edge_attr, **{k: optional[k] for k in wanted})
        if not isinstance(msg, Tensor) or msg.shape[0] != src.shape[0]:
            got = tuple(msg.shape) if isinstance(msg, Tensor) else type(msg).__name__
            method = "message_from_nodes" if self._from_nodes else "message"
            raise ValueError(f"{type(self).__name__}.{method} must return [E={src.shape[0]}, ...], got {got}")
        msg = self.hook_message(msg)  # [edge, d]
        aggr = self.hook_aggregation(self.aggregate(msg, dst, num_nodes))  # [node, d]
        extra: dict[str, Any] = {"x": x}
        if "graph_attr" in self._update_args:
            extra["graph_attr"] = gather_rows(graph_attr, batch)  # type: ignore[arg-type]
        out = self.update(aggr, h, **{k: extra[k] for k in self._update_args})
        if not isinstance(out, Tensor) or out.shape[0] != num_nodes:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"{type(self).__name__}.update must return [N={num_nodes}, ...], got {got}")
        return self.hook_update(out)  # [node, d]
