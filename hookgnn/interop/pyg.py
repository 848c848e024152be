"""A PyTorch Geometric model, hooked as it is: :func:`from_pyg`.

``hooked = hookgnn.from_pyg(model)`` returns a :class:`PyGModel`, a
:class:`~hookgnn.hooks.HookedRootModule` around the very same ``model`` (nothing is
copied or rewritten). It is called exactly like the original and returns the
original's output; it also takes a hookgnn :class:`~hookgnn.graph.Graph` (mapped onto
the original's arguments by :mod:`hookgnn.interop.inputs`), which is how patching,
attribution and circuits call it.

Hook points are found on the first forward (or ``from_pyg(model, example=...)``): every
call of a ``MessagePassing`` module is a *round* with ``hook_input``, ``hook_src``,
``hook_message``, ``hook_aggregation``, ``hook_update`` and ``hook_output``, every leaf
``Linear`` and activation module has ``hook_out``, and the float inputs the forward reads
have ``hook_x``, ``hook_s``, ... (tensor arguments, or attributes of a ``Data`` argument;
an input the forward never reads gets none) (names in :mod:`hookgnn.interop.structure`). The same forward traces
which hooked neuron feeds which (:mod:`hookgnn.interop.trace`), so weight edges exist
without :func:`~hookgnn.nn.wiring.register_links`. The hooks themselves are registered
for one forward at a time and removed after it (:mod:`hookgnn.interop.session`): the
original model carries no hook between calls, and with no hook attached the wrapped
model computes exactly what the original computes: its outputs bit for bit, also where a
``aggr="min"`` / ``"max"`` aggregation runs on hookgnn's scatter kernel (:mod:`hookgnn.interop.aggregation`,
whose gradients are PyG's bit for bit too). Gradients are PyG's bit for bit, with one exception that
only attribution meets: with the parameters frozen, an ``nn.Linear`` with a narrow input (:mod:`~hookgnn.interop.frozen_linear`)
or fed by an ``nn.ReLU`` (:mod:`~hookgnn.interop.relu_linear`, the relu's backward fused in) computes its input gradient
faster, equal up to float rounding (:mod:`hookgnn.interop.fast_leaves`). Attributes the wrapper does not have
are read from the original (``hooked.supports_edge_attr``), so helpers that take the
model work on the wrapped one.

What stays impossible: modules compiled with ``torch.compile`` or scripted (PyG skips
its hooks there; wrap the module before compiling); layers that never call
``propagate`` (a fused kernel such as the cuGraph layers), whose rounds have only
``hook_input`` / ``hook_output`` (asking for their other hook points raises a
``KeyError`` saying so); activations written as functions between two ``Linear`` layers
(``lin2(F.relu(lin1(x)))``), whose neurons have no hook point (use ``nn.ReLU``); links
through sums of two activations (``x_j + lin(e)``), normalisations or attention.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule, HookPoint
from hookgnn.interop.inputs import InputsFn, bind, call_from_graph, counts_of, input_tensors, replace_inputs, signature_of
from hookgnn.interop.layers import ACTIVATIONS, check_model, is_linear, require_pyg, source_argument
from hookgnn.interop.session import Session
from hookgnn.interop.structure import Discovery, HookLayout
from hookgnn.interop.trace import Tracer
from hookgnn.nn.wiring import ResolvedLink, act_fn, declared_links, resolve_links
from hookgnn.ops.threads import threads_by_inputs
from hookgnn.rounds import RoundRoles, declared_roles

#: How a ``MessagePassing.forward``'s usual arguments are indexed (for exact local recomputation).
PYG_ROLES = {"x": "node", "edge_index": "edge_index", "edge_attr": "edge", "edge_weight": "edge",
             "edge_type": "edge", "size": "pass", "batch": "node", "pos": "node", "return_attention_weights": "pass"}


@dataclass(frozen=True)
class RoundCall:
    """Round ``t``'s module and the arguments it was called with (before ``hook_input``'s hooks)."""

    t: int
    module: nn.Module
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class PyGModel(HookedRootModule):
    """An existing PyG model with hook points on every round (see the module doc).

    >>> import torch
    >>> from torch_geometric.nn import GCNConv
    >>> class Net(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.conv = GCNConv(2, 2)
    ...     def forward(self, x, edge_index):
    ...         for _ in range(2):                       # one conv, two rounds
    ...             x = self.conv(x, edge_index).relu()
    ...         return x
    >>> net = Net()
    >>> x, ei = torch.randn(3, 2), torch.tensor([[0, 1], [1, 2]])
    >>> hooked = from_pyg(net, example=(x, ei))
    >>> torch.equal(hooked(x, ei), net(x, ei)), hooked.num_rounds
    (True, 2)
    >>> hooked.round_hook("message", 1)
    'conv.calls.1.hook_message'
    """

    def __init__(self, model: nn.Module, inputs: InputsFn | None = None) -> None:
        super().__init__()
        pyg_nn = require_pyg()
        check_model(model)
        self.model = model
        self.inputs_fn = inputs
        mp = [(p, m) for p, m in model.named_modules() if isinstance(m, pyg_nn.MessagePassing)]
        if not mp:
            raise ValueError(f"{type(model).__name__} has no MessagePassing module: from_pyg wraps PyG models")
        paths = {p for p, _ in mp}
        leaves = [(p, m, frozenset(a for a in paths if a == "" or p.startswith(a + ".")), is_linear(m))
                  for p, m in model.named_modules() if is_linear(m) or isinstance(m, ACTIVATIONS)]
        src_arg = {p: source_argument(m) for p, m in mp}
        # plain attributes: lists of the model's own modules, not submodules of the wrapper
        object.__setattr__(self, "_parts", (mp, leaves, src_arg, paths))
        object.__setattr__(self, "_sig", signature_of(model))
        object.__setattr__(self, "_structure", None)
        object.__setattr__(self, "_points", {})

    def __getattr__(self, name: str) -> Any:
        """``nn.Module``'s lookup (parameters, buffers, submodules), then the original model's
        attributes (``hooked.supports_edge_attr``, ``hooked.has_edge_weight()``)."""
        try:
            return super().__getattr__(name)
        except AttributeError:
            model = self.__dict__.get("_modules", {}).get("model")
            if model is None or name.startswith("__"):
                raise
            try:
                return getattr(model, name)
            except AttributeError:
                raise AttributeError(f"neither the wrapper {type(self).__name__} nor the wrapped "
                                     f"{type(model).__name__} has an attribute {name!r}") from None

    def input_fields(self) -> frozenset[str]:
        """The names of the floating inputs the forward reads (its input hook points
        ``hook_{name}``): argument names, or attribute names of a ``Data`` argument, which
        are the names of the hookgnn ``Graph`` fields they come from (``s``, ``pos``). EAP-IG
        interpolates the fields among them (:func:`~hookgnn.attribution.gradients.interpolated_fields`).
        With ``inputs=fn``, a field passed under another name is not matched."""
        return frozenset(key[1] for key in self._require().names if key[0] == "input")  # type: ignore[index]

    # -------------------------------------------------------------- calling
    def _prepare(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        if args and isinstance(args[0], Graph):
            if len(args) > 1:
                raise TypeError("a wrapped model called with a hookgnn Graph takes no other positional argument")
            a, kw = self.inputs_fn(args[0]) if self.inputs_fn is not None else call_from_graph(self._sig, args[0])
            return tuple(a), {**kw, **kwargs}
        return args, kwargs

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Call the original model (with its own arguments, or on a hookgnn ``Graph``)."""
        args, kwargs = self._prepare(args, kwargs)
        if self._structure is None:
            return self._discover(args, kwargs)
        mp, leaves, src_arg, _ = self._parts
        bound = bind(self._sig, args, kwargs)
        with Session(mp, leaves, src_arg, self._points, edited=self._structure.edited) as session:
            new = {}
            for name, t, _ in input_tensors(bound):
                hp = self._points.get(("input", name))
                out = t if hp is None else session.through(("input", name), hp, t)
                if out is not t:
                    new[name] = out
            if new:
                args, kwargs = replace_inputs(bound, new)
            return self.model(*args, **kwargs)

    @threads_by_inputs
    def discover(self, *args: Any, **kwargs: Any) -> Any:
        """Find (again) the hook points and links with one forward on these inputs; returns its output.
        Runs on threads chosen by the inputs' workload, as a call of the model does.

        Hook points whose name and axis stay keep their hooks.
        """
        return self._discover(*self._prepare(args, kwargs))

    def _discover(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        mp, leaves, src_arg, paths = self._parts
        bound = bind(self._sig, args, kwargs)
        tracer = Tracer()
        disc = Discovery(counts_of(bound), tracer)
        with Session(mp, leaves, src_arg, None, disc), tracer:
            for name, t, axis in input_tensors(bound):
                disc.site(("input", name), t, axis, None, None, None)
                tracer.watch(("input", name), t)
            out = self.model(*args, **kwargs)
        structure = HookLayout(disc, paths)
        old = {hp.name: hp for hp in self._points.values()}
        points: dict[Hashable, HookPoint] = {}
        for key, name in structure.names.items():
            hp = old.get(name)
            if hp is None or hp.axis != structure.axes[key]:
                hp = HookPoint(structure.axes[key])  # type: ignore[arg-type]
            points[key] = hp
        object.__setattr__(self, "_structure", structure)
        object.__setattr__(self, "_points", points)
        self.__dict__.pop("_hook_dict", None)
        self.setup()
        return out

    def _ensure(self, args: tuple[Any, ...], kwargs: dict[str, Any], drop: tuple[str, ...]) -> None:
        if self._structure is None:
            with torch.no_grad():
                self.discover(*args, **{k: v for k, v in kwargs.items() if k not in drop})

    def run_with_hooks(self, *args: Any, **kwargs: Any) -> Any:
        """As :meth:`HookedRootModule.run_with_hooks`; discovers the hook points first if needed."""
        self._ensure(args, kwargs, ("fwd_hooks", "bwd_hooks"))
        return super().run_with_hooks(*args, **kwargs)

    def run_with_cache(self, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        """As :meth:`HookedRootModule.run_with_cache`; discovers the hook points first if needed."""
        self._ensure(args, kwargs, ("names_filter", "grad_metric", "device"))
        return super().run_with_cache(*args, **kwargs)

    # -------------------------------------------------------------- naming
    def setup(self) -> None:
        """Name the discovered hook points and record their rounds."""
        s = self._require()
        hook_dict = {}
        for key, name in s.names.items():
            hp = self._points[key]
            hp.name = name
            hook_dict[name] = hp
        object.__setattr__(self, "_hook_dict", hook_dict)
        object.__setattr__(self, "_places", dict(s.places))
        object.__setattr__(self, "_by_place", {(rel, t): name for name, (t, rel) in s.places.items()})

    def _require(self) -> HookLayout:
        if self._structure is None:
            raise RuntimeError(
                "this wrapped PyG model has not found its hook points yet: they are found on its first forward; "
                "call it once (model(x, edge_index, ...)), or pass example=... to from_pyg, or call model.discover(...)"
            )
        return self._structure

    def resolve(self, name_or_predicate: str | Callable[[str], bool]) -> list[HookPoint]:
        """As :meth:`HookedRootModule.resolve`, explaining hook points that cannot exist."""
        try:
            return super().resolve(name_or_predicate)
        except KeyError:
            if isinstance(name_or_predicate, str):
                for path, cls in self._require().opaque.items():
                    if path == "" or name_or_predicate.startswith(path + "."):
                        raise KeyError(
                            f"no hook point named {name_or_predicate!r}: {path or 'the model'} ({cls}) ran without "
                            "calling propagate (a fused kernel or its own forward), so PyG's message and aggregate "
                            "hooks never fire there; only its hook_input / hook_output and leaf modules are hooked"
                        ) from None
            raise

    # -------------------------------------------------------------- rounds
    def find_rounds(self) -> dict[str, tuple[int, str]]:
        """Round ``t`` is the ``t``-th ``MessagePassing`` call; its hook points and their paths inside it."""
        return dict(self._require().places)

    def round_module(self, t: int) -> nn.Module:
        """The ``MessagePassing`` module that runs round ``t``."""
        rounds = self._require().rounds
        if not 0 <= t < len(rounds):
            raise IndexError(f"round {t} does not exist; rounds are 0 .. {len(rounds) - 1}")
        return rounds[t][2]

    def state_hook(self, t: int) -> str:
        """``hook_input`` of round ``t`` (the node features its module was called with);
        for ``t = num_rounds``, the last round's ``hook_output``."""
        rounds = self._require().rounds
        if not 0 <= t <= len(rounds):
            raise IndexError(f"no state enters round {t}; rounds are 0 .. {len(rounds) - 1}")
        rel = "hook_input" if t < len(rounds) else "hook_output"
        try:
            return self.round_hook(rel, min(t, len(rounds) - 1))
        except KeyError:
            path = rounds[min(t, len(rounds) - 1)][0]
            raise KeyError(f"round {t} ({path}) was not called with a node-feature tensor as its first argument "
                           f"(a (source, target) pair?), so it has no {rel}") from None

    def output_hook(self, t: int) -> str:
        """``hook_output`` of round ``t``: what its ``MessagePassing`` module returned."""
        return self.round_hook("hook_output", t)

    def between_rounds(self, t: int) -> Callable[[Tensor], Tensor] | None:
        """The node-wise code between round ``t``'s ``hook_output`` and round ``t + 1``'s
        ``hook_input``, from the traced links: a chain of elementwise links (activation
        modules or functions, value-preserving ops) composed; ``None`` when anything else
        sits between (a concatenation, a norm, a second input)."""
        start, target = self.output_hook(t), self.state_hook(t + 1)
        incoming: dict[str, list[ResolvedLink]] = {}
        for r in {t, min(t + 1, self.num_rounds - 1)}:
            for link in self.round_links(r):
                incoming.setdefault(link.dst, []).append(link)
        chain, node = [], target
        while node != start:
            found = incoming.get(node, [])
            if len(found) != 1 or found[0].rows != "same" or found[0].weight is not None or len(chain) > 64:
                return None
            chain.append(act_fn(found[0].act))
            node = found[0].src

        def between(state: Tensor) -> Tensor:
            for fn in reversed(chain):
                state = fn(state)
            return state

        return between

    def round_roles(self, t: int) -> RoundRoles:
        """:data:`PYG_ROLES` with node state ``x`` (or what the layer declares itself);
        the receptive field to try first is the number of ``propagate`` calls the round
        made in the discovery forward (``SGConv(K=3)``: 3). AtP* checks it on the graph."""
        module = self.round_module(t)
        if getattr(module, "input_roles", None) is not None:
            return declared_roles(module)
        hops = max(1, self._require().propagations[t])
        return RoundRoles(dict(PYG_ROLES), "x", hops, hops)

    @contextlib.contextmanager
    def round_sources_replaced(self, t: int, fn: Callable[[Tensor], Tensor]) -> Iterator[None]:
        """While the block runs, a direct call of round ``t``'s module reads ``fn(x_j)`` in
        its first ``message`` call (where ``hook_src`` sits; later ``propagate`` calls of
        the same call, as in ``SGConv``, are left alone)."""
        module = self.round_module(t)
        name = self._parts[2].get(self._require().rounds[t][0])
        if name is None:
            raise KeyError(f"round {t} ({type(module).__name__}) has no hook_src: its message has no *_j argument")
        calls = [0]

        def start(m: nn.Module, args: Any) -> None:
            calls[0] = 0

        def replace(m: nn.Module, inputs: tuple[Any, ...]) -> Any:
            calls[0] += 1
            return ({**inputs[0], name: fn(inputs[0][name])},) if calls[0] == 1 else None

        handles = [module.register_forward_pre_hook(start),
                   module.register_message_forward_pre_hook(replace)]  # type: ignore[operator]
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def round_links(self, t: int) -> list[ResolvedLink]:
        """The traced links of round ``t`` (what :func:`~hookgnn.nn.wiring.links_of` returns).

        A link belongs to the round in which its destination fires; a destination
        outside rounds (a leaf between two rounds, a decoder) to the round it follows
        (round 0 before the first round). Links the round module declares (a ``links()``
        method, or :func:`~hookgnn.nn.wiring.register_links` for its class, for what tracing
        cannot see; :func:`~hookgnn.nn.wiring.declared_links`) are added, with names inside the round and ``{prev}`` = ``hook_input``, ``{x}`` =
        ``hook_x``, ``{e}`` = ``hook_edge_attr``.
        """
        s = self._require()
        if not 0 <= t < len(s.rounds):
            raise IndexError(f"round {t} does not exist; rounds are 0 .. {len(s.rounds) - 1}")
        like = next(self.model.parameters(), None)
        links = s.resolve(t, None if like is None else like.detach())
        module = s.rounds[t][2]
        declared = declared_links(module)
        if declared is not None:
            special = {"{prev}": self.state_hook(t), "{x}": "hook_x", "{e}": "hook_edge_attr"}
            links += resolve_links(module, declared, t, lambda n: special.get(n) or self.round_hook(n, t))
        return links

    @contextlib.contextmanager
    def round_calls(self) -> Iterator[list[RoundCall]]:
        """Record, for every forward inside the block, each round's module and call arguments.

        >>> # with hooked.round_calls() as calls: hooked(x, ei)
        >>> # calls[t].module(*calls[t].args, **calls[t].kwargs) reruns round t alone
        """
        calls: list[RoundCall] = []

        def pre(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            calls.append(RoundCall(len(calls), module, args, dict(kwargs)))

        handles = [m.register_forward_pre_hook(pre, with_kwargs=True) for _, m in self._parts[0]]
        try:
            yield calls
        finally:
            for h in handles:
                h.remove()


def from_pyg(model: nn.Module, example: Any = None, inputs: InputsFn | None = None) -> PyGModel:
    """Wrap a PyTorch Geometric model with hook points on every round (see :class:`PyGModel`).

    ``example`` runs the discovery forward now: a hookgnn ``Graph`` or PyG ``Data`` (one
    argument), a tuple (positional arguments) or a dict (keyword arguments); otherwise it
    runs on the first call. ``inputs`` maps a hookgnn ``Graph`` onto the model's call
    ``(args, kwargs)`` where the default mapping by parameter name does not fit.
    """
    hooked = PyGModel(model, inputs)
    if example is not None:
        with torch.no_grad():
            if isinstance(example, tuple):
                hooked.discover(*example)
            elif isinstance(example, dict):
                hooked.discover(**example)
            else:
                hooked.discover(example)
    return hooked

