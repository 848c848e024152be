"""HookedGNN: encode-process-decode with a hooked processor applied for T rounds.

.. math::

    x^{enc} = E_x(x), \\quad e^{enc} = E_e(e), \\quad g^{enc} = E_g(g), \\quad h^{(0)} = x^{enc}

    h^{(t+1)} = P_t\\big(h^{(t)}, e^{enc}, x^{(t)}, g^{enc}\\big), \\quad t = 0, \\dots, T-1

    \\hat y_k = D_k\\big(h^{(T)}, x^{enc}, e^{enc}, g^{enc}\\big)

where :math:`x^{(t)} = x^{enc}` plus, with ``encode_hints``, the encoded hints of step t.
Rounds are stacked (own weights, ``tie_weights=False``) or weight-tied (one processor
reused, CLRS-style). Either way round ``t`` is the module ``layers.t``, so its hook
points are ``layers.{t}.hook_message`` etc., and caches, patching and attribution see
every round separately. ``max_steps`` rounds exist from construction; a call may run
any ``steps <= max_steps``.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from hookgnn.graph import Graph
from hookgnn.hooks import HookPoint
from hookgnn.models.base import LayerStack, ModelOutput
from hookgnn.models.heads import Decoder, Encoder, as_columns, prediction_to_input
from hookgnn.models.layered import LayeredGNN
from hookgnn.nn import PROCESSORS, HookedMessagePassing
from hookgnn.nn.wiring import ResolvedLink
from hookgnn.ops import scatter_plans
from hookgnn.spec import FeatureSpec

if TYPE_CHECKING:
    from hookgnn.tasks.base import Task

ProcessorFactory = Callable[[int], HookedMessagePassing]


def tie_parameters(module: nn.Module, to: nn.Module) -> nn.Module:
    """Make every parameter of ``module`` the very same ``Parameter`` object as in ``to``."""
    for name, sub in module.named_modules():
        source = to.get_submodule(name)
        for pname in list(sub._parameters):
            setattr(sub, pname, source._parameters[pname])
    return module


class HookedGNN(LayerStack):
    """Encode-process-decode GNN with named hook points on every round.

    ``run_with_cache``, ``run_with_hooks``, ``hooks()`` and the rounds protocol come from
    :class:`~hookgnn.hooks.HookedRootModule` (listed below with the class's own methods).

    >>> model = HookedGNN("mpnn", d_hidden=8, node_in=1, max_steps=3)
    >>> g = Graph(x=torch.ones(4, 1), edge_index=torch.tensor([[0, 1, 2], [1, 2, 3]]))
    >>> out, cache = model.run_with_cache(g)
    >>> cache["message", -1].shape, out.hidden.shape
    (torch.Size([3, 8]), torch.Size([4, 8]))

    :param processor: a name from :data:`hookgnn.nn.PROCESSORS` or a factory ``d_hidden -> HookedMessagePassing``.
    :param d_hidden: width of node states and of the edge and graph encodings.
    :param node_in: width of the node features ``x``; 0 means a learned constant encoding.
    :param edge_in: width of ``edge_attr``; 0 means a learned constant encoding.
    :param graph_in: width of ``graph_attr``; 0 means a learned constant encoding.
    :param spec: output and hint features to decode (stage ``"output"`` / ``"hint"``; input features in the
        spec are ignored).
    :param max_steps: number of rounds that exist (hook points ``layers.0`` ...).
    :param tie_weights: one processor reused in every round (True) or own weights per round.
    :param encode_hints: feed hints back as inputs (teacher forcing or own predictions).
    """

    def __init__(
        self,
        processor: str | ProcessorFactory,
        d_hidden: int,
        node_in: int,
        edge_in: int = 0,
        graph_in: int = 0,
        spec: Mapping[str, FeatureSpec] | None = None,
        max_steps: int = 16,
        tie_weights: bool = True,
        encode_hints: bool = False,
    ) -> None:
        super().__init__()
        if max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {max_steps}")
        factory = _processor_factory(processor)
        self.d_hidden, self.node_in, self.edge_in, self.graph_in = d_hidden, node_in, edge_in, graph_in
        self.max_steps, self.tie_weights, self.encode_hints = max_steps, tie_weights, encode_hints
        spec = dict(spec or {})
        self.output_spec = {k: s for k, s in spec.items() if s.stage == "output"}
        self.hint_spec = {k: s for k, s in spec.items() if s.stage == "hint"}
        if encode_hints:
            edge_pointers = [k for k, s in self.hint_spec.items() if s.type == "pointer" and s.location == "edge"]
            if edge_pointers:
                raise ValueError(f"encode_hints does not support edge pointer hints ({edge_pointers}): their "
                                 "value [E, K] has no fixed input width; pass a spec without them")
            anywhere = [k for k, s in self.hint_spec.items() if s.type == "pointer" and s.any_node]
            if anywhere:
                raise ValueError(f"encode_hints does not support node pointer hints to any node ({anywhere}): "
                                 "their value [N, K] has no fixed input width; pass a spec without them")

        self.node_encoder = Encoder(node_in, d_hidden)
        self.edge_encoder = Encoder(edge_in, d_hidden)
        self.graph_encoder = Encoder(graph_in, d_hidden)
        self.hook_node_embed = HookPoint("node")
        self.hook_edge_embed = HookPoint("edge")
        self.hook_graph_embed = HookPoint("graph")

        first = factory(d_hidden)
        if tie_weights:
            rounds = [first] + [tie_parameters(copy.deepcopy(first), first) for _ in range(max_steps - 1)]
        else:
            rounds = [first] + [factory(d_hidden) for _ in range(max_steps - 1)]
        self.layers = nn.ModuleList(rounds)

        self.decoders = nn.ModuleDict({k: Decoder(s, d_hidden) for k, s in self.output_spec.items()})
        self.hook_out = nn.ModuleDict({k: HookPoint(s.field_location) for k, s in self.output_spec.items()})
        self.hint_decoders = nn.ModuleDict({k: Decoder(s, d_hidden) for k, s in self.hint_spec.items()})
        self.hint_encoders = nn.ModuleDict(
            {k: Encoder(s.width, d_hidden) for k, s in self.hint_spec.items()} if encode_hints else {}
        )
        self.setup()

    @classmethod
    def for_task(
        cls,
        task: str | Task,
        processor: str | ProcessorFactory = "mpnn",
        d_hidden: int = 64,
        max_steps: int = 64,
        tie_weights: bool = True,
        encode_hints: bool = False,
        features: Sequence[str] | None = None,
        hints: bool = True,
    ) -> HookedGNN:
        """An untrained model sized for ``task``: the model :func:`hookgnn.training.train` builds.

        ``node_in`` and ``edge_in`` count every node and edge input column of the task (``pos``
        included; :func:`~hookgnn.tasks.model_spec.input_widths`); the decoders are the task's
        outputs and, with ``hints``, its hints (or just ``features``;
        :func:`~hookgnn.tasks.model_spec.select_spec`). With ``encode_hints`` every hint is decoded,
        since every one is read back.

        >>> model = HookedGNN.for_task("bellman_ford", "mpnn", d_hidden=8, max_steps=4)
        >>> model.node_in, model.edge_in, sorted(model.output_spec), sorted(model.hint_spec)
        (2, 1, ['d', 'pi', 'reach'], ['d_h', 'msk', 'pi_h'])

        :param task: a task name (:data:`hookgnn.tasks.TASKS`) or a :class:`~hookgnn.tasks.base.Task`.
        :param processor: a name from :data:`hookgnn.nn.PROCESSORS` or a factory ``d_hidden -> HookedMessagePassing``.
        :param d_hidden: width of node states and encodings.
        :param max_steps: number of rounds that exist (hook points ``layers.0`` ...).
        :param tie_weights: one processor reused in every round (True) or own weights per round.
        :param encode_hints: feed hints back as inputs (teacher forcing or own predictions).
        :param features: the outputs and hints to decode (``None``: all outputs, and all hints if ``hints``).
        :param hints: with ``features=None``, decode the hints too.
        """
        from hookgnn.tasks import get_task  # lazy: `import hookgnn` does not load the tasks
        from hookgnn.tasks.model_spec import input_widths, select_spec

        task = get_task(task) if isinstance(task, str) else task
        node_in, edge_in = input_widths(task)
        spec = select_spec(task, features, hints)
        if encode_hints:  # the model reads every decoded hint back, so all must be decoded
            spec.update({k: s for k, s in task.spec.items() if s.stage == "hint"})
        model = cls(processor, d_hidden, node_in, edge_in, 0, spec, max_steps, tie_weights, encode_hints)
        if isinstance(processor, str):
            model.processor_name = processor  # remembered for checkpoints (hookgnn.training.model_config)
        return model

    @staticmethod
    def from_layers(layers: Sequence[HookedMessagePassing], **kwargs: Any) -> LayeredGNN:
        """Rounds of their own widths, optional encoders and decoders, an activation between
        rounds: a :class:`~hookgnn.models.layered.LayeredGNN` (see there for the keywords).

        >>> from hookgnn.nn import MLPConv
        >>> HookedGNN.from_layers([MLPConv(1, 8, d_edge=1), MLPConv(8, 1, d_edge=1)]).num_rounds
        2
        """
        return LayeredGNN(layers, **kwargs)

    def state_hook(self, t: int) -> str:
        """``hook_node_embed`` for ``t = 0``, else ``layers.{t-1}.hook_update``.

        >>> HookedGNN("mpnn", 4, node_in=1, max_steps=3).state_hook(2)
        'layers.1.hook_update'
        """
        if not 0 <= t <= self.max_steps:
            raise IndexError(f"no state enters round {t}; rounds are 0 .. {self.max_steps - 1}")
        return "hook_node_embed" if t == 0 else f"layers.{t - 1}.hook_update"

    def round_links(self, t: int) -> list[ResolvedLink]:
        """Round ``t``'s processor links (:meth:`LayerStack.round_links`); ``ValueError`` with
        ``encode_hints``, where the node input of round ``t`` is not ``hook_node_embed``.

        >>> [l.name for l in HookedGNN("minagg", 2, node_in=1, max_steps=2).round_links(1)][:3]
        ['src', 'agg_h', 'agg_e']
        """
        if self.encode_hints:
            raise ValueError("neuron-level links assume encode_hints=False (the node input of every round is "
                             "hook_node_embed); this model encodes hints")
        return super().round_links(t)

    @scatter_plans()  # every round's scatter reuses one sort of each edge index (hookgnn.ops.plan)
    def forward(
        self,
        graph: Graph,
        steps: int | None = None,
        teacher_forcing: bool = False,
        start: int = 0,
        state: Tensor | None = None,
    ) -> ModelOutput:
        """Run rounds ``start .. steps - 1`` (``steps`` defaults to ``max_steps``).

        ``start > 0`` resumes a run: ``state`` is the node state entering round
        ``start`` (``layers.{start-1}.hook_update`` of that run, ``[N, d]``); the earlier
        rounds are skipped and hint predictions cover the rounds that ran. Patching
        sweeps use this to skip the rounds before a patch. With ``encode_hints``, round
        ``t`` reads hint step ``t``: from the graph's fields when ``teacher_forcing`` (or
        at ``t = 0``), else from the previous round's predictions.
        """
        steps = self.max_steps if steps is None else steps
        if not 0 <= steps <= self.max_steps:
            raise ValueError(
                f"asked for {steps} rounds, but this model has hook points for max_steps="
                f"{self.max_steps} rounds (layers.0 .. layers.{self.max_steps - 1}); build it with a larger max_steps"
            )
        if start and (state is None or state.shape != (graph.num_nodes, self.d_hidden) or start > steps):
            got = None if state is None else tuple(state.shape)
            raise ValueError(f"resuming at round {start} of {steps} needs state [N={graph.num_nodes}, "
                             f"d={self.d_hidden}] entering that round, got {got}")
        if start and self.encode_hints and not teacher_forcing:
            raise ValueError("resuming a run that feeds back its own hint predictions is not supported")
        x, e, g = self._encode(graph)
        h = x if not start else state
        hint_preds: dict[str, list[Tensor]] = {k: [] for k in self.hint_spec}
        for t in range(start, steps):
            x_t, e_t, g_t = self._with_hints(t, x, e, g, graph, hint_preds, teacher_forcing)
            h = self.layers[t](h, graph.edge_index, e_t, x=x_t, graph_attr=g_t, batch=graph.batch)
            for k, dec in self.hint_decoders.items():
                hint_preds[k].append(dec(h, x, e, g, graph))
        outputs = {k: self.hook_out[k](dec(h, x, e, g, graph)) for k, dec in self.decoders.items()}
        hints = {k: torch.stack(v) for k, v in hint_preds.items() if v}
        return ModelOutput(outputs, hints, h)

    def decode(self, graph: Graph, state: Tensor) -> ModelOutput:
        """The outputs decoded from a final node state ``state`` [N, d], as if the last round
        had left it; ``hints`` hold one step each, decoded from ``state`` too (the hint
        prediction after the last round).

        Estimators that change the final state use this to evaluate the decoders and
        the metric exactly without rerunning any round.

        >>> from hookgnn.spec import FeatureSpec
        >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=2)
        >>> g = Graph(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
        >>> out = model(g)
        >>> torch.allclose(model.decode(g, out.hidden)["d"], out["d"])
        True
        """
        if state.shape != (graph.num_nodes, self.d_hidden):
            raise ValueError(f"decode needs a state [N={graph.num_nodes}, d={self.d_hidden}], got {tuple(state.shape)}")
        x, e, g = self._encode(graph)
        hints = {k: dec(state, x, e, g, graph).unsqueeze(0) for k, dec in self.hint_decoders.items()}
        outputs = {k: self.hook_out[k](dec(state, x, e, g, graph)) for k, dec in self.decoders.items()}
        return ModelOutput(outputs, hints, state)

    def can_resume(self, **forward_kwargs: Any) -> bool:
        """``True`` unless the forward already resumes (``start=``) or feeds back its own
        hint predictions (``encode_hints`` without ``teacher_forcing``).

        >>> HookedGNN("mpnn", 4, node_in=1, max_steps=2).can_resume(steps=1)
        True
        """
        feeds_back_hints = self.encode_hints and not forward_kwargs.get("teacher_forcing")
        return "start" not in forward_kwargs and not feeds_back_hints

    def resume(self, graph: Graph, t: int, state: Tensor, before: ModelOutput, copies: int,
               **forward_kwargs: Any) -> ModelOutput:
        """``forward(graph, start=t, state=state)``, with the hint predictions of the rounds it
        skips taken from ``before`` (a run on one copy of ``graph``), repeated for each of the
        ``copies`` copies, in front of its own (see :meth:`RoundMethods.resume`).

        >>> from hookgnn.spec import FeatureSpec
        >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=3)
        >>> g = Graph(x=torch.ones(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
        >>> _, cache = model.run_with_cache(g)
        >>> out = model.resume(g, 2, cache["layers.1.hook_update"], model(g), 1)
        >>> torch.allclose(out["d"], model(g)["d"])
        True
        """
        out = self(graph, **forward_kwargs, start=t, state=state)
        prefix = {name: h[:t] for name, h in before.hints.items()}
        if not prefix:
            return out
        tiled = {name: h.repeat(1, copies, *([1] * (h.dim() - 2))) for name, h in prefix.items()}
        return ModelOutput(out.outputs, {name: torch.cat([tiled[name], out.hints[name]]) if name in out.hints
                                         else tiled[name] for name in tiled}, out.hidden)

    def output_from_state(self, graph: Graph, state: Tensor, before: ModelOutput, copies: int,
                          **forward_kwargs: Any) -> ModelOutput:
        """:meth:`decode` of ``state`` (no round runs), with the hint predictions of every
        round but the last taken from ``before``, repeated for each of the ``copies`` copies."""
        out = self.decode(graph, state)
        hints = {name: torch.cat([h[:-1].repeat(1, copies, *([1] * (h.dim() - 2))), out.hints[name]])
                 for name, h in before.hints.items()}
        return ModelOutput(out.outputs, hints, state)

    def _encode(self, graph: Graph) -> tuple[Tensor, Tensor, Tensor]:
        """Check the graph and encode its node, edge and graph features."""
        self._check_inputs(graph)
        x = self.hook_node_embed(self.node_encoder(graph.x))  # [node, d]
        edge_attr = graph.edge_attr if graph.edge_attr is not None else graph.x.new_zeros(graph.num_edges, 0)
        e = self.hook_edge_embed(self.edge_encoder(edge_attr))  # [edge, d]
        graph_attr = graph.graph_attr if graph.graph_attr is not None else graph.x.new_zeros(graph.num_graphs, 0)
        g = self.hook_graph_embed(self.graph_encoder(graph_attr))  # [graph, d]
        return x, e, g

    def _with_hints(
        self, t: int, x: Tensor, e: Tensor, g: Tensor, graph: Graph, preds: dict[str, list[Tensor]], teacher: bool
    ) -> tuple[Tensor, Tensor, Tensor]:
        if not self.encode_hints:
            return x, e, g
        enc = {"node": x, "edge": e, "graph": g}
        for k, spec in self.hint_spec.items():
            if teacher or t == 0:
                field_ = graph.fields.get(k)
                if field_ is None:
                    raise ValueError(f"encode_hints needs the hint field {k!r} on the graph")
                value = field_.value[min(t, field_.value.shape[0] - 1)]
            else:
                value = prediction_to_input(spec, preds[k][-1], graph)
            loc = spec.field_location
            enc[loc] = enc[loc] + self.hint_encoders[k](as_columns(spec, value.to(x.dtype)))
        return enc["node"], enc["edge"], enc["graph"]

    def _check_inputs(self, graph: Graph) -> None:
        if not isinstance(graph, Graph):
            raise TypeError(f"HookedGNN takes a hookgnn Graph, got {type(graph).__name__}")
        param = next(self.parameters())
        if graph.dtype != param.dtype:
            raise ValueError(f"graph features are {graph.dtype} but the model's parameters are {param.dtype}: "
                             f"convert one of them (graph.to({param.dtype}) or model.to({graph.dtype}))")
        if graph.device != param.device:
            raise ValueError(f"graph is on {graph.device} but the model is on {param.device}: "
                             f"move one of them (graph.to({str(param.device)!r}) or model.to({str(graph.device)!r}))")
        for name, value, want in (
            ("graph.x", graph.x, self.node_in),
            ("graph.edge_attr", graph.edge_attr, self.edge_in),
            ("graph.graph_attr", graph.graph_attr, self.graph_in),
        ):
            have = 0 if value is None else value.shape[1]
            if have != want:
                raise ValueError(f"{name} has {have} features but the model was built with {want}")


def _processor_factory(processor: str | ProcessorFactory) -> ProcessorFactory:
    if isinstance(processor, str):
        if processor not in PROCESSORS:
            close = difflib.get_close_matches(processor, list(PROCESSORS), n=3)
            raise KeyError(f"unknown processor {processor!r}; known: {sorted(PROCESSORS)}"
                           + (f" (did you mean {close}?)" if close else ""))
        return PROCESSORS[processor]
    if not callable(processor):
        raise TypeError(f"processor must be a name or a factory d_hidden -> module, got {type(processor).__name__}")
    return processor
