"""Plain-Python float64 twins of the hand-set networks of :mod:`hookgnn.groundtruth` (no torch).

Each twin takes node inputs ``x`` (list of rows), ``edges`` (list of ``(u, v)``), edge weights
``w`` (Bellman-Ford only), a number of rounds and ``senders``: ``{(t, e): state}`` makes edge
``e`` of round ``t`` read that sender state instead of the live one (a message ablated or
patched, as row ``e`` of ``layers.t.hook_src``). It returns the decoded output per node and
the states after every round. An empty aggregation is 0, as hookgnn's scatter gives it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Row = list[float]
Senders = dict[tuple[int, int], Row]

BIG = 100.0


def relu(a: float) -> float:
    return a if a > 0 else 0.0


def _aggregate(n: int, edges: Sequence[tuple[int, int]], msgs: list[Row], width: int, op: str) -> list[Row]:
    out: list[Row | None] = [None] * n
    for (u, v), m in zip(edges, msgs):
        cur = out[v]
        if cur is None:
            out[v] = list(m)
        elif op == "min":
            out[v] = [min(a, b) for a, b in zip(cur, m)]
        elif op == "max":
            out[v] = [max(a, b) for a, b in zip(cur, m)]
        else:
            out[v] = [a + b for a, b in zip(cur, m)]
    return [r if r is not None else [0.0] * width for r in out]


def _run(x: Sequence[Row], edges: Sequence[tuple[int, int]], rounds: int, senders: Senders | None,
         embed: Callable[[Row], Row], message: Callable[[Row, int], Row], op: str,
         update: Callable[[Row, Row, Row], Row], decode: Callable[[Row], float], width: int) -> tuple[Row, list[list[Row]]]:
    senders = senders or {}
    h = [embed([float(v) for v in row]) for row in x]
    states = [h]
    for t in range(rounds):
        msgs = [message(senders.get((t, e), h[u]), e) for e, (u, _) in enumerate(edges)]
        agg = _aggregate(len(h), edges, msgs, width, op)
        h = [update(agg[v], h[v], [float(c) for c in x[v]]) for v in range(len(h))]
        states.append(h)
    return [decode(r) for r in h], states


def bellman_ford(x: Sequence[Row], edges: Sequence[tuple[int, int]], w: Sequence[float], rounds: int,
                 senders: Senders | None = None) -> tuple[Row, list[list[Row]]]:
    """The min-plus network: copies 0 and 1 hold ``d - BIG``, channel 2 the decoy."""
    return _run(
        x, edges, rounds, senders,
        embed=lambda r: [-BIG * r[0], -BIG * r[0], r[1]],
        message=lambda h, e: [relu(h[0] + w[e] + BIG), relu(h[1] + w[e] + BIG), relu(h[2] + w[e])],
        op="min",
        update=lambda a, h, _x: [a[0] - BIG, a[1] - BIG, 0.5 * a[2] + 0.5 * h[2]],
        decode=lambda h: 0.5 * h[0] + 0.5 * h[1] + BIG, width=3)


def reachability(x: Sequence[Row], edges: Sequence[tuple[int, int]], rounds: int,
                 senders: Senders | None = None) -> tuple[Row, list[list[Row]]]:
    """The max network: ``r' = min(1, r + max_u r_u)`` on channel 0, a decoy on channel 1."""
    def update(a: Row, h: Row, _x: Row) -> Row:
        k0, k1, k2 = relu(h[0] + a[0]), relu(h[0] + a[0] - 1.0), relu(0.5 * h[1] + 0.5 * a[1])
        return [relu(k0 - k1), relu(k2)]

    return _run(x, edges, rounds, senders, embed=lambda r: [r[0], r[1]],
                message=lambda h, e: [relu(h[0]), relu(h[1])], op="max", update=update, decode=lambda h: h[0], width=2)


def conjunction(x: Sequence[Row], edges: Sequence[tuple[int, int]], rounds: int,
                senders: Senders | None = None) -> tuple[Row, list[list[Row]]]:
    """The sum network: ``z' = clip(sum_u z_u - g, 0, 1)`` on channel 0 (``g`` from the inputs), a decoy on 2."""
    def update(a: Row, h: Row, xv: Row) -> Row:
        k0, k1 = relu(a[0] - xv[1]), relu(a[0] - xv[1] - 1.0)
        return [relu(k0 - k1), 0.0, relu(relu(0.5 * h[2] + 0.5 * a[2]))]

    return _run(x, edges, rounds, senders, embed=lambda r: [r[0], r[1], r[2]],
                message=lambda h, e: [relu(h[0]), 0.0, relu(h[2])], op="sum", update=update,
                decode=lambda h: h[0], width=3)
