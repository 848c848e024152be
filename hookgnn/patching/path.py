"""Path patching: the effect of senders on the metric *through* chosen receivers only.

Exact two-pass procedure (as for IOI, Wang et al. 2022). Described here in the
``"noising"`` direction (base run = clean, source run = corrupted); the default,
``"denoising"``, swaps them, as everywhere in hookgnn:

1. run the base graph with the sender components set to their source values and every
   other component of the ``freeze`` hooks held at its base value; record the
   receivers (their value now carries the senders' effect along paths that avoid the
   frozen components);
2. run the base graph again with only the receivers set to the recorded values and
   read the metric.

The cheap special case is one message: the message on ``u -> v`` in round ``t``
recomputed from ``u``'s source state is row ``e`` of ``layers.t.hook_src`` taken from the
source run (that row *is* ``h_u`` as read by edge ``e``), and nothing else changes:
every single message's effect at once is ``patch(model, clean, corrupted, metric, messages(model))``
(:func:`~hookgnn.patching.activation.patch`); a set of messages patched together is
``path_patch`` with their ``carrier`` rows as both senders and receivers and ``freeze=()``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn._deprecated import warn_deprecated
from hookgnn.metrics.per_graph import Metric
from hookgnn.metrics.targets import clean_targets
from hookgnn.patching.activation import base_and_source, check_same_structure, patch
from hookgnn.patching.components import Component, MessageEdge, check_carriers, component_mask
from hookgnn.patching.selectors import messages as _messages
from hookgnn.patching.results import DEFAULT_DIRECTION, Direction, HookScores
from hookgnn.ops.threads import threads_by_workload

def default_freeze(model: HookedRootModule, components: Iterable[Component]) -> list[str]:
    """Every round's copy of the hooks the components live on (``layers.*.hook_update`` ...)."""
    wanted = {n for c in components for n in model.counterparts(c.hook)}
    return [n for n in model.hook_dict if n in wanted]


@threads_by_workload
def path_patch(
    model: HookedRootModule,
    clean: Graph,
    corrupted: Graph,
    metric: Metric,
    senders: Sequence[Component],
    receivers: Sequence[Component],
    freeze: Sequence[str] | None = None,
    direction: Direction = DEFAULT_DIRECTION,
    **forward_kwargs: Any,
) -> float:
    """Metric (mean over graphs) after patching senders -> receivers paths (two passes).

    ``freeze``: hooks whose components (other than senders and receivers) are held at
    their base value in pass 1; default: the hooks of the senders' and receivers'
    families in every round (:func:`default_freeze`).

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.metrics.per_graph import OutputSum
    >>> from hookgnn.spec import FeatureSpec
    >>> model = HookedGNN("mpnn", 4, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=2)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> m = OutputSum("d")
    >>> s = [Component("layers.0.hook_update", 0)]; r = [Component("layers.1.hook_aggregation", 1)]
    >>> isinstance(path_patch(model, g, g.replace(x=torch.randn(3, 1)), m, s, r), float)
    True

    :param model: the hooked model (a :class:`~hookgnn.HookedGNN`, a ``from_layers`` stack or a wrapped PyG
        model); it is not modified.
    :param clean: the clean graph or batch (:class:`~hookgnn.graph.Graph`); the metric reads its targets.
    :param corrupted: the corrupted graph or batch: the same nodes and edges as ``clean`` (activations are swapped
        row for row).
    :param metric: ``metric(output, graph)`` -> one value per graph (:mod:`hookgnn.metrics`), averaged over the
        batch.
    :param senders: components whose patched values are sent (pass 1).
    :param receivers: components that receive them: their pass-1 values are patched into pass 2.
    :param freeze: hooks held at their base value in pass 1 (other than senders and receivers); default: the
        senders' and receivers' families in every round.
    :param direction: ``"denoising"`` (clean values patched into the corrupted run, the default) or ``"noising"``
        (corrupted values into the clean run).
    :param forward_kwargs: keywords for every forward of the model, e.g. ``steps=8``.
    """
    check_same_structure(clean, corrupted)
    metric = clean_targets(metric, clean)
    base, src_graph = base_and_source(clean, corrupted, direction)
    freeze = default_freeze(model, [*senders, *receivers]) if freeze is None else list(freeze)
    s_hooks = {c.hook for c in senders}
    r_hooks = {c.hook for c in receivers}
    names = sorted(set(freeze) | s_hooks | r_hooks)
    with torch.no_grad():
        _, base_cache = model.run_with_cache(base, names_filter=names, **forward_kwargs)
        _, src_cache = model.run_with_cache(src_graph, names_filter=sorted(s_hooks), **forward_kwargs)
        recorded: dict[str, Tensor] = {}

        def pass_one(act: Tensor, hook: Any) -> Tensor:
            h = hook.name
            m_s = component_mask(senders, h, act.shape, act.device)
            m_r = component_mask(receivers, h, act.shape, act.device)
            frozen = ~m_s & ~m_r if h in freeze else torch.zeros_like(m_s)
            new = torch.where(m_s, src_cache[h].to(act) if h in s_hooks else act, act)
            new = torch.where(frozen, base_cache[h].to(act), new)
            if h in r_hooks:
                recorded[h] = new.clone()
            return new

        with model.hooks(fwd_hooks=[(h, pass_one) for h in names]):
            model(base, **forward_kwargs)

        def pass_two(act: Tensor, hook: Any) -> Tensor:
            m_r = component_mask(receivers, hook.name, act.shape, act.device)
            return torch.where(m_r, recorded[hook.name].to(act), act)

        with model.hooks(fwd_hooks=[(h, pass_two) for h in sorted(r_hooks)]):
            out = model(base, **forward_kwargs)
        return float(metric(out, base).mean())


def message_patch(
    model: HookedRootModule,
    clean: Graph,
    corrupted: Graph,
    metric: Metric,
    messages: Sequence[MessageEdge],
    direction: Direction = DEFAULT_DIRECTION,
    **forward_kwargs: Any,
) -> float:
    """Deprecated: path patching from each message's sender state to the message itself,
    ``path_patch(model, clean, corrupted, metric, carriers, carriers, freeze=())`` with
    ``carriers = [m.carrier for m in messages]`` (the same metric, computed the same way)."""
    warn_deprecated("message_patch", "path_patch(model, clean, corrupted, metric, carriers, carriers, freeze=()) "
                    "with carriers = [m.carrier for m in messages]")
    carriers = [m.in_model(model).carrier for m in messages]
    check_carriers(model, sorted({c.hook for c in carriers}))
    return path_patch(model, clean, corrupted, metric, carriers, carriers, (), direction, **forward_kwargs)


def message_sweep(
    model: HookedRootModule,
    clean: Graph,
    corrupted: Graph,
    metric: Metric,
    rounds: Sequence[int] | None = None,
    direction: Direction = DEFAULT_DIRECTION,
    copies: int = 64,
    max_memory: int | float | str | None = None,
    **forward_kwargs: Any,
) -> HookScores:
    """Deprecated: ``patch(model, clean, corrupted, metric, messages(model, rounds), ...)``."""
    warn_deprecated("message_sweep", "patch(model, clean, corrupted, metric, messages(model, rounds))")
    return patch(model, clean, corrupted, metric, _messages(model, rounds), direction=direction, copies=copies,
                 max_memory=max_memory, **forward_kwargs)
