"""References for the conformance matrix in plain torch: no hookgnn hook, cache or patching code.

A case's network runs with ``torch`` forward hooks on its round modules (rounds are
counted by calls, so one module called three times is three rounds) and, for single
messages, PyG's message pre-hook (the ``x_j`` rows a round's messages read) or a
``torch`` forward hook on the round module's ``hook_src`` module. Edits are functions
``(round, tensor) -> tensor``; every metric reads its targets from the clean graph.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from hookgnn import Graph
from model_zoo import Case, case

Edit = Callable[[int, Tensor], Tensor | None]


@contextlib.contextmanager
def edits(case: Case, out: Edit | None = None, msg: Edit | None = None) -> Iterator[None]:
    """Plain hooks that apply ``out`` to what round ``t`` returns and ``msg`` to the source rows
    its messages read; removed on exit."""
    state = {"t": -1}
    handles = []

    def enter(module: Any, args: Any) -> None:
        state["t"] += 1

    def leave(module: Any, args: Any, value: Tensor) -> Tensor | None:
        return None if out is None else out(state["t"], value)

    def pre_message(module: Any, inputs: tuple[dict[str, Any]]) -> tuple[dict[str, Any]] | None:
        kwargs = dict(inputs[0])
        new = msg(state["t"], kwargs[case.message_arg])  # type: ignore[misc, index]
        kwargs[case.message_arg] = new  # type: ignore[index]
        return (kwargs,)

    def at_src(module: Any, args: Any, value: Tensor) -> Tensor | None:
        return msg(state["t"], value)  # type: ignore[misc]

    for m in dict.fromkeys(case.rounds):  # a module reused for several rounds is hooked once
        handles += [m.register_forward_pre_hook(enter), m.register_forward_hook(leave)]
        if msg is not None and case.message_arg is not None:
            handles.append(m.register_message_forward_pre_hook(pre_message))
        elif msg is not None:
            handles.append(m.hook_src.register_forward_hook(at_src))
            # processors that build messages from node tensors call hook_src only when a hook is attached
            handles.append(m.hook_src.add_hook(lambda act, hook: None))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def pair(c: Case, direction: str) -> tuple[Graph, Graph]:
    """(base graph, source graph) of a patching direction."""
    return (c.corrupted, c.clean) if direction == "denoising" else (c.clean, c.corrupted)


def run(case: Case, graph: Graph, out: Edit | None = None, msg: Edit | None = None) -> float:
    """The metric (targets of the clean graph) of the plain network on ``graph`` with edits."""
    with torch.no_grad(), edits(case, out, msg):
        return float(case.metric(case.call(case.raw, graph), case.clean).mean())


def record(case: Case, graph: Graph, grad: bool = False) -> tuple[dict[int, Tensor], dict[int, Tensor], dict[int, Tensor], dict[int, Tensor]]:
    """Round outputs and message source rows of a plain run, and (``grad``) the metric's
    gradients there: ``(outs, msgs, d outs, d msgs)``, each by round."""
    outs: dict[int, Tensor] = {}
    msgs: dict[int, Tensor] = {}

    def keep(into: dict[int, Tensor]) -> Edit:
        def fn(t: int, value: Tensor) -> Tensor:
            if grad and not value.requires_grad:  # an input read as it is (no parameter before it)
                value = value.detach().requires_grad_()
            into[t] = value
            return value
        return fn

    with torch.enable_grad() if grad else torch.no_grad(), edits(case, keep(outs), keep(msgs) if _has_messages(case) else None):
        output = case.call(case.raw, graph)
        if not grad:
            return {t: v.detach() for t, v in outs.items()}, {t: v.detach() for t, v in msgs.items()}, {}, {}
        value = case.metric(output, case.clean).mean()
        keys = [("o", t) for t in outs] + [("m", t) for t in msgs]
        grads = torch.autograd.grad(value, [outs[t] if k == "o" else msgs[t] for k, t in keys], allow_unused=True)
    d_out = {t: g for (k, t), g in zip(keys, grads) if k == "o"}
    d_msg = {t: g for (k, t), g in zip(keys, grads) if k == "m"}
    return ({t: v.detach() for t, v in outs.items()}, {t: v.detach() for t, v in msgs.items()}, d_out, d_msg)


def _has_messages(case: Case) -> bool:
    return case.message_arg is not None or all(hasattr(m, "hook_src") for m in case.rounds)


def set_rows(rows: dict[int, list[int]], values: dict[int, Tensor] | Tensor) -> Edit:
    """An edit setting rows ``rows[t]`` of round ``t`` to ``values[t]``'s rows (or to a broadcast tensor)."""
    def fn(t: int, act: Tensor) -> Tensor:
        if not rows.get(t):
            return act
        new = act.clone()
        src = values[t] if isinstance(values, dict) else values.expand_as(act)
        new[rows[t]] = src[rows[t]].to(act)
        return new
    return fn


def interpolate(case: Case, base: Graph, src: Graph, alpha: float) -> Graph:
    """``base + alpha (src - base)`` in every float input of the case (``x``, ``edge_attr``, fields)."""
    from hookgnn import Field

    lerp = lambda a, b: a + alpha * (b - a)  # noqa: E731
    fields = {n: Field(lerp(f.value, src.fields[n].value), f.location) if n in case.inputs else f
              for n, f in base.fields.items()}
    return base.replace(x=lerp(base.x, src.x), edge_attr=lerp(base.edge_attr, src.edge_attr), fields=fields)


def integrated_gradients(case: Case, base: Graph, src: Graph, steps: int) -> tuple[dict[int, Tensor], dict[int, Tensor]]:
    """Per round, ``(a_src - a_base) * mean_k grad`` at the round outputs and at the message
    source rows (gradient at the base when ``steps == 0``), summed over features: rows."""
    alphas = [0.0] if steps == 0 else [(k + 0.5) / steps for k in range(steps)]
    o_b, m_b, _, _ = record(case, base)
    o_s, m_s, _, _ = record(case, src)
    g_o: dict[int, Tensor] = {}
    g_m: dict[int, Tensor] = {}
    for a in alphas:
        _, _, d_o, d_m = record(case, interpolate(case, base, src, a), grad=True)
        for acc, d in ((g_o, d_o), (g_m, d_m)):
            for t, g in d.items():
                g = torch.zeros_like(o_b[t] if acc is g_o else m_b[t]) if g is None else g
                acc[t] = acc.get(t, 0) + g / len(alphas)
    rows = lambda s, b, g: {t: ((s[t] - b[t]) * g[t]).reshape(b[t].shape[0], -1).sum(1) for t in g}  # noqa: E731
    return rows(o_s, o_b, g_o), rows(m_s, m_b, g_m)


def effects(c: Case, direction: str, level: str) -> tuple[Tensor, float]:
    """Exact effects of single patches, see :func:`_effects`."""
    return _effects(c.name, direction, level)


@functools.cache
def _effects(kind: str, direction: str, level: str) -> tuple[Tensor, float]:
    """Exact effects ``[round, node]`` (``level="node"``: round outputs) or ``[round, edge]``
    (single messages) in plain torch, and the base run's metric (cached per kind)."""
    c = case(kind)
    base, src = pair(c, direction)
    o_src, m_src, _, _ = record(c, src)
    baseline = run(c, base)
    T = c.model.num_rounds
    rows = base.num_nodes if level == "node" else base.num_edges
    table = torch.zeros(T, rows, dtype=torch.float64)
    for t in range(T):
        for r in range(rows):
            edit = set_rows({t: [r]}, o_src if level == "node" else m_src)
            table[t, r] = run(c, base, **{"out" if level == "node" else "msg": edit}) - baseline
    assert table.abs().max() > 1e-5, f"no {level} patch of {kind} changes the metric: the case tests nothing"
    return table, baseline


def param_entry(raw: torch.nn.Module, view: Tensor, j: int, i: int) -> tuple[str, tuple[int, ...]]:
    """The parameter entry (name, index) that ``view[j, i]`` (a view of a weight) is, by address."""
    size = view.element_size()
    addr = view.data_ptr() + (j * view.stride(0) + i * view.stride(1)) * size
    for name, p in raw.named_parameters():
        if p.data_ptr() <= addr < p.data_ptr() + p.numel() * size:
            return name, tuple(int(v) for v in torch.unravel_index(torch.tensor((addr - p.data_ptr()) // size), p.shape))
    for name, p in raw.named_parameters():  # a copy of a block of columns of a weight
        if p.dim() == 2 and p.shape[0] == view.shape[0]:
            for col in range(p.shape[1] - view.shape[1] + 1):
                if torch.equal(p.detach()[:, col:col + view.shape[1]], view):
                    return name, (j, col + i)
    raise AssertionError("a link's weight is not a block of a parameter")
