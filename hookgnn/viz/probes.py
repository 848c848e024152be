"""Probe quality per (hint, step): heatmaps of a :class:`~hookgnn.causal.tables.ProbeResult`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hookgnn.viz._style import add_caption

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from hookgnn.causal.tables import ProbeResult


def plot_probes(
    result: ProbeResult,
    values: tuple[str, ...] = ("score", "control"),
    cmap: str = "viridis",
    caption: str | None = None,
) -> Figure:
    """One ``hint x step`` heatmap per column of ``values`` (default: the held-out probe score
    and its control task), on one colour scale from 0 to 1 (R^2 below 0 shows as 0).

    Args:
        result: the probes' table (:func:`hookgnn.causal.probe_hints`).
        values: which columns of the table to draw, one panel each.
        cmap: the matplotlib colour map.
        caption: a note printed under the figure.

    >>> import matplotlib; matplotlib.use("Agg")
    >>> from hookgnn.causal.tables import ProbeResult
    >>> rows = [{"hint": "d", "step": k, "score": 0.9, "control": 0.1} for k in (1, 2)]
    >>> plot_probes(ProbeResult(rows, {})).axes[0].images[0].get_array().shape
    (1, 2)
    """
    import matplotlib.pyplot as plt

    hints, steps, _ = result.matrix(values[0])
    fig, axes = plt.subplots(1, len(values), figsize=(2.0 + 0.5 * len(steps) * len(values), 1.2 + 0.4 * len(hints)),
                             squeeze=False)
    for ax, value in zip(axes[0], values):
        _, _, m = result.matrix(value)
        im = ax.imshow(m.numpy(), cmap=cmap, vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
        ax.set_xticks(range(len(steps)))
        ax.set_xticklabels([str(k) for k in steps], fontsize=7)
        ax.set_yticks(range(len(hints)))
        ax.set_yticklabels(hints, fontsize=7)
        ax.set_xlabel("step")
        ax.set_title(value, fontsize=9)
    fig.colorbar(im, ax=list(axes[0]))
    add_caption(fig, caption)
    return fig
