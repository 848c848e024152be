"""Heatmaps of patching effects: one panel per :class:`~hookgnn.patching.results.HookScores`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from hookgnn.graph import Graph
from hookgnn.viz._checks import effect_scale, finite, item_labels
from hookgnn.viz._style import add_caption, effect_cmap

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from hookgnn.patching.results import HookScores


def short_hook(hook: str) -> str:
    """``layers.3.hook_update`` -> ``3: hook_update`` (a tick label that fits); other names unchanged.

    >>> short_hook("layers.3.hook_update"), short_hook("hook_out")
    ('3: hook_update', 'hook_out')
    """
    parts = hook.split(".", 2)
    return f"{parts[1]}: {parts[2]}" if len(parts) == 3 and parts[0] == "layers" else hook


def plot_scores(
    scores: HookScores | Mapping[str, HookScores],
    graph: Graph | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    caption: str | None = None,
) -> Figure:
    """Heatmap of the effects ``values[row, item]`` of one or several :class:`HookScores`.

    Each cell is an effect :math:`m(\\text{patched}) - m(\\text{base})`, so white is "no
    effect". The colour scale is shared by every panel and is

    * diverging and symmetric, :math:`[-L, L]` with :math:`L = \\max |\\text{values}|`,
      when both signs occur;
    * sequential from white at 0 to blue at :math:`-L` (all effects :math:`\\le 0`) or to
      red at :math:`L` (all :math:`\\ge 0`), so no half of the scale is wasted.

    Every panel has its own colorbar on that shared scale (panels wider than 12 items are
    stacked one under the other, narrower ones side by side). Edge columns are labelled
    ``u->v`` when ``graph`` (the graph the scores were computed on) is given.

    >>> import torch, matplotlib; matplotlib.use("Agg")
    >>> from hookgnn.patching.results import HookScores
    >>> fig = plot_scores(HookScores(torch.tensor([[0.0, -1.0, -2.0]]), ("layers.0.hook_update",),
    ...                   ("round", "node"), baseline=0.0))
    >>> fig.axes[0].images[0].get_clim()
    (-2.0, 0.0)

    :param scores: one ``HookScores``, or a mapping ``{panel title: HookScores}`` drawn side by side.
    :param graph: the scored graph, for ``u->v`` labels of edge columns.
    :param ax: draw a single ``HookScores`` into these axes (not with a mapping).
    :param title: the figure's title (one panel) or suptitle (several).
    :param caption: a note printed under the figure (e.g. that a quick setting's numbers differ from the text).
    """
    import matplotlib.pyplot as plt

    panels = dict(scores) if isinstance(scores, Mapping) else {"": scores}
    if not panels:
        raise ValueError("plot_scores: no scores to draw (an empty mapping)")
    if ax is not None and len(panels) > 1:
        raise ValueError(f"plot_scores: ax draws one panel, got a mapping of {len(panels)} scores")
    values = {name: s.values.detach().cpu().double() for name, s in panels.items()}
    flat = [v for name, t in values.items() for v in finite(t.flatten().tolist(), f"plot_scores panel {name!r}")]
    kind, vmin, vmax = effect_scale(flat)
    cmap = effect_cmap(kind)
    widest = max(t.shape[1] for t in values.values())
    tallest = max(t.shape[0] for t in values.values())
    if ax is None:
        size = (max(4.0, 0.22 * widest + 2.5), max(2.5, 0.3 * tallest + 1.8))
        stack = widest > 12  # wide panels go one under the other, narrow ones side by side
        grid = (len(panels), 1) if stack else (1, len(panels))
        fig, axes = plt.subplots(*grid, figsize=(size[0] * grid[1], size[1] * grid[0]), squeeze=False)
        axs = list(axes.flatten())
    else:
        fig, axs = ax.figure, [ax]
    for a, (name, s) in zip(axs, panels.items()):
        t = values[name]
        im = a.imshow(t.numpy(), cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
        labels = item_labels(s.axes[1], t.shape[1], graph)
        a.set_xticks(range(t.shape[1]))
        a.set_xticklabels(labels, rotation=90 if s.axes[1] == "edge" else 0, fontsize=6)
        a.set_xlabel(s.axes[1] + (" (u->v)" if s.axes[1] == "edge" and graph is not None else ""))
        a.set_yticks(range(len(s.hooks)))
        a.set_yticklabels([short_hook(h) for h in s.hooks], fontsize=7)
        a.set_ylabel(s.axes[0])
        fig.colorbar(im, ax=a, label="effect on the metric")
        a.set_title(name or title or f"effects ({s.direction}; baseline {s.baseline:.3g})", fontsize=9)
    add_caption(fig, caption)
    if len(panels) > 1 and title:
        fig.suptitle(title, fontsize=10)
        fig.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - 0.35 / fig.get_figheight()))
    else:
        fig.tight_layout()
    return fig
