"""Figures and interactive views of patching results and circuits.

Figures (matplotlib, and networkx for the graph panel; the ``viz`` extra), each returning
the ``matplotlib.figure.Figure``:

* :func:`plot_scores`: heatmaps of :class:`~hookgnn.patching.results.HookScores` (round x
  node / edge / feature), white = no effect, one colorbar and (by default) one scale per panel;
* :func:`plot_message_circuit`: a message circuit unrolled in time, and over the graph;
* :func:`plot_neuron_circuit`: a neuron-level circuit (weight edges), hook by hook;
* :func:`plot_probes`: probe quality per (hint, step) beside its control task.

Interactive views (self-contained HTML, no extra needed), each a :class:`RenderedHTML`
that shows in Jupyter and saves to a file:

* :func:`scores_heatmap`: the heatmap with ``u->v``, round and value on hover;
* :func:`circuit_explorer`: the unrolled circuit, a round slider and the graph side by side.

Every function that draws a figure takes ``caption=``: a note printed under it (the
tutorials use it to say when a quick setting's numbers differ from the text).
"""

from hookgnn.viz.circuit import plot_message_circuit
from hookgnn.viz.heatmap import plot_scores
from hookgnn.viz.html import RenderedHTML, circuit_explorer, scores_heatmap
from hookgnn.viz.neurons import plot_neuron_circuit
from hookgnn.viz.probes import plot_probes

__all__ = ["RenderedHTML", "circuit_explorer", "plot_message_circuit", "plot_neuron_circuit", "plot_probes",
           "plot_scores", "scores_heatmap"]
