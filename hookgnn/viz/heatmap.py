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


def scale_label(kind: str, vmin: float, vmax: float) -> str:
    """A colour scale as a panel title shows it: ``±L`` (signed), ``[-L, 0]`` or ``[0, L]``.

    >>> scale_label("signed", -0.5, 0.5), scale_label("negative", -2.0, 0.0), scale_label("positive", 0.0, 3.0)
    ('±0.5', '[-2, 0]', '[0, 3]')

    :param kind: ``"signed"``, ``"negative"`` or ``"positive"`` (:func:`~hookgnn.viz._checks.effect_scale`).
    :param vmin: the scale's lower end.
    :param vmax: the scale's upper end.
    """
    if kind == "signed":
        return f"±{vmax:.3g}"
    return f"[{vmin:.3g}, {vmax:.3g}]"


def plot_scores(
    scores: HookScores | Mapping[str, HookScores],
    graph: Graph | None = None,
    ax: Axes | None = None,
    title: str | None = None,
    caption: str | None = None,
    share_scale: bool = False,
) -> Figure:
    """Heatmap of the effects ``values[row, item]`` of one or several :class:`HookScores`.

    Each cell is an effect :math:`m(\\text{patched}) - m(\\text{base})`, so white is "no
    effect". Each panel's colour scale is

    * diverging and symmetric, :math:`[-L, L]` with :math:`L = \\max |\\text{values}|`,
      when both signs occur;
    * sequential from white at 0 to blue at :math:`-L` (all effects :math:`\\le 0`) or to
      red at :math:`L` (all :math:`\\ge 0`), so no half of the scale is wasted.

    By default :math:`L` (and the kind of scale) is each panel's own, so that an estimate that
    overshoots by 50x does not wash out the exact panel beside it; with ``share_scale=True`` it
    is taken over all panels at once, for comparing magnitudes by colour. With several panels,
    each title ends with its scale (``±L``, ``[-L, 0]`` or ``[0, L]``). Every panel has its own
    colorbar (panels wider than 12 items are stacked one under the other, narrower ones side by
    side). Edge columns are labelled
    ``u->v`` when ``graph`` (the graph the scores were computed on) is given.

    >>> import torch, matplotlib; matplotlib.use("Agg")
    >>> from hookgnn.patching.results import HookScores
    >>> fig = plot_scores(HookScores(torch.tensor([[0.0, -1.0, -2.0]]), ("layers.0.hook_update",),
    ...                   ("round", "node"), baseline=0.0))
    >>> fig.axes[0].images[0].get_clim()
    (-2.0, 0.0)
    >>> scores = lambda *v: HookScores(torch.tensor([v]), ("layers.0.hook_update",), ("round", "node"), baseline=0.0)
    >>> fig = plot_scores({"exact": scores(0.0, -1.0, -2.0), "estimate": scores(0.0, 50.0, -100.0)})
    >>> [(a.get_title(), a.images[0].get_clim()) for a in fig.axes if a.images]
    [('exact  [-2, 0]', (-2.0, 0.0)), ('estimate  ±100', (-100.0, 100.0))]

    :param scores: one ``HookScores``, or a mapping ``{panel title: HookScores}`` drawn side by side.
    :param graph: the scored graph, for ``u->v`` labels of edge columns.
    :param ax: draw a single ``HookScores`` into these axes (not with a mapping).
    :param title: the figure's title (one panel) or suptitle (several).
    :param caption: a note printed under the figure (e.g. that a quick setting's numbers differ from the text).
    :param share_scale: one colour scale for all panels (the largest :math:`|\\text{value}|` of any) instead of
        one per panel.
    """
    import matplotlib.pyplot as plt

    panels = dict(scores) if isinstance(scores, Mapping) else {"": scores}
    if not panels:
        raise ValueError("plot_scores: no scores to draw (an empty mapping)")
    if ax is not None and len(panels) > 1:
        raise ValueError(f"plot_scores: ax draws one panel, got a mapping of {len(panels)} scores")
    values = {name: s.values.detach().cpu().double() for name, s in panels.items()}
    flat = {name: finite(t.flatten().tolist(), f"plot_scores panel {name!r}") for name, t in values.items()}
    shared = effect_scale([v for vs in flat.values() for v in vs])
    scales = {name: shared if share_scale else effect_scale(vs) for name, vs in flat.items()}
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
        kind, vmin, vmax = scales[name]
        im = a.imshow(t.numpy(), cmap=effect_cmap(kind), vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
        labels = item_labels(s.axes[1], t.shape[1], graph)
        a.set_xticks(range(t.shape[1]))
        a.set_xticklabels(labels, rotation=90 if s.axes[1] == "edge" else 0, fontsize=6)
        a.set_xlabel(s.axes[1] + (" (u->v)" if s.axes[1] == "edge" and graph is not None else ""))
        a.set_yticks(range(len(s.hooks)))
        a.set_yticklabels([short_hook(h) for h in s.hooks], fontsize=7)
        a.set_ylabel(s.axes[0])
        fig.colorbar(im, ax=a, label="effect on the metric")
        head = name or title or f"effects ({s.direction}; baseline {s.baseline:.3g})"
        a.set_title(f"{head}  {scale_label(*scales[name])}" if len(panels) > 1 else head, fontsize=9)
    add_caption(fig, caption)
    if len(panels) > 1 and title:
        fig.suptitle(title, fontsize=10)
        fig.tight_layout(rect=(0.0, 0.0, 1.0, 1.0 - 0.35 / fig.get_figheight()))
    else:
        fig.tight_layout()
    return fig
