"""What every figure shares: the effect colours and widths, colour maps, axes and captions.

Effects are signed: positive (the patch raised the metric) is red, negative is blue, no
effect is white (heatmaps) or grey (lines). Line widths grow with ``|score| / max |score|``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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


def effect_cmap(kind: str) -> Colormap:
    """White at 0 and blue/red at the far end(s): diverging only for ``kind == "signed"``."""
    from matplotlib.colors import LinearSegmentedColormap

    stops = {"signed": [NEGATIVE, "white", POSITIVE], "negative": [NEGATIVE, "white"], "positive": ["white", POSITIVE]}
    if kind not in stops:
        raise ValueError(f"colour scale kind {kind!r}: expected one of {sorted(stops)}")
    return LinearSegmentedColormap.from_list(f"hookgnn_{kind}", stops[kind])


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
