"""What every figure shares: the effect colours, widths and colour scales, captions, edge labels.

Effects are signed: positive (the patch raised the metric) is red, negative is blue, no
effect is white (heatmaps) or grey (lines). Line widths grow with ``|score| / max |score|``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from hookgnn.graph import Graph

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.colors import Colormap
    from matplotlib.figure import Figure

#: Colour of a positive effect, a negative effect, and of an element drawn without a score.
POSITIVE, NEGATIVE, NEUTRAL = "#b2182b", "#2166ac", "#7f7f7f"
#: Line widths: ``MIN_WIDTH + SPAN_WIDTH * |score| / max |score|``.
MIN_WIDTH, SPAN_WIDTH = 0.8, 3.2


def sign_colour(score: float | None) -> str:
    """Red for a positive score, blue for a negative one, grey for zero or no score.

    >>> sign_colour(0.3), sign_colour(-2.0), sign_colour(None)
    ('#b2182b', '#2166ac', '#7f7f7f')
    """
    if score is None or score == 0:
        return NEUTRAL
    return POSITIVE if score > 0 else NEGATIVE


def width(score: float | None, top: float) -> float:
    """Line width of a score: ``MIN_WIDTH + SPAN_WIDTH * |score| / top`` (``MIN_WIDTH + SPAN_WIDTH / 2`` without one).

    >>> round(width(2.0, 4.0), 6), round(width(None, 4.0), 6)
    (2.4, 2.4)
    """
    if score is None:
        return MIN_WIDTH + SPAN_WIDTH / 2
    return MIN_WIDTH + SPAN_WIDTH * (abs(score) / top if top > 0 else 0.0)


def finite(values: Iterable[float], what: str) -> list[float]:
    """``values`` as floats; a ``ValueError`` naming ``what`` when one is NaN or infinite."""
    out = [float(v) for v in values]
    bad = [v for v in out if not math.isfinite(v)]
    if bad:
        raise ValueError(f"{what}: {len(bad)} value(s) are not finite (first: {bad[0]}); "
                         "a figure cannot place them on a colour scale")
    return out


def effect_scale(values: Sequence[float]) -> tuple[str, float, float]:
    """``(kind, vmin, vmax)`` of a colour scale for effects: ``"signed"`` (symmetric about 0)
    when both signs occur, else ``"negative"`` (``[-max|v|, 0]``) or ``"positive"`` (``[0, max|v|]``).

    >>> effect_scale([-1.0, 0.5]), effect_scale([-1.0, 0.0]), effect_scale([0.0, 2.0])
    (('signed', -1.0, 1.0), ('negative', -1.0, 0.0), ('positive', 0.0, 2.0))
    """
    lim = max((abs(v) for v in values), default=0.0) or 1.0
    if any(v < 0 for v in values) and any(v > 0 for v in values):
        return "signed", -lim, lim
    if any(v < 0 for v in values):
        return "negative", -lim, 0.0
    return "positive", 0.0, lim


def effect_cmap(kind: str) -> Colormap:
    """White at 0 and blue/red at the far end(s): diverging only for ``kind == "signed"``."""
    from matplotlib.colors import LinearSegmentedColormap

    stops = {"signed": [NEGATIVE, "white", POSITIVE], "negative": [NEGATIVE, "white"], "positive": ["white", POSITIVE]}
    if kind not in stops:
        raise ValueError(f"colour scale kind {kind!r}: expected one of {sorted(stops)}")
    return LinearSegmentedColormap.from_list(f"hookgnn_{kind}", stops[kind])


def edge_labels(graph: Graph) -> list[str]:
    """``"u->v"`` for every edge of ``graph`` in ``edge_index`` order.

    >>> import torch
    >>> edge_labels(Graph(x=torch.zeros(2, 1), edge_index=torch.tensor([[0, 1], [1, 1]])))
    ['0->1', '1->1']
    """
    src, dst = graph.edge_index.tolist()
    return [f"{u}->{v}" for u, v in zip(src, dst)]


def item_labels(axis: str, count: int, graph: Graph | None) -> list[str]:
    """Labels of a score row's items: ``u->v`` for edges (with ``graph``), else the index."""
    if axis == "edge" and graph is not None:
        labels = edge_labels(graph)
        if len(labels) != count:
            raise ValueError(f"graph has {len(labels)} edges but the scores have {count} edge columns: "
                             "pass the graph the scores were computed on")
        return labels
    return [str(i) for i in range(count)]


def new_axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    """``ax`` and its figure, or a new figure with one axes of ``figsize``."""
    import matplotlib.pyplot as plt

    if ax is not None:
        return ax.figure, ax  # type: ignore[return-value]
    fig, ax = plt.subplots(figsize=figsize)
    return fig, ax


def add_caption(fig: Figure, caption: str | None) -> None:
    """Write ``caption`` under the figure (italic, small); ``bbox_inches="tight"`` keeps it in the file."""
    if caption:
        fig.text(0.01, -0.01, caption, ha="left", va="top", fontsize=7, style="italic", wrap=True, gid="caption")
