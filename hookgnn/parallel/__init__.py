"""Past one process: dataset-level patching and training on ``torch.distributed`` (``torchrun``).

* :mod:`~hookgnn.parallel.world`: rank and size, sharding, the collectives, joining ``torchrun``'s group;
* :mod:`~hookgnn.parallel.pairs`: :func:`over_pairs`, the mean over many (clean, corrupted) pairs of
  any scorer (``patch``, ``attribute``, ``eap``, ``atp_star``, ...), sharded across ranks;
* :mod:`~hookgnn.parallel.interventions`: :func:`over_interventions`, interchange interventions
  (``interchange_accuracy``, ``output_iia``) over a dataset, sharded across ranks;
* :mod:`~hookgnn.parallel.packing`: results as flat vectors for ``all_reduce``;
* :mod:`~hookgnn.parallel.training`: the global batch split across ranks, losses normalised
  over it, DistributedDataParallel (used by :func:`hookgnn.training.train`);
* :mod:`~hookgnn.parallel.scores`: the deprecated 0.1 wrappers (``parallel.eap`` ...), each
  ``over_pairs`` of its scorer.

The same code runs as one process (``python script.py``) or many
(``torchrun --nproc_per_node N script.py``); see the README section "Scaling out".
"""

from hookgnn.parallel.interventions import over_interventions
from hookgnn.parallel.pairs import over_pairs
from hookgnn.parallel.scores import (
    activation_sweep,
    atp_star,
    attribution_patch,
    eap,
    integrated_gradients,
    mean_over_pairs,
    message_sweep,
)
from hookgnn.parallel.world import World, init_from_env, launched_world

__all__ = [
    "World", "activation_sweep", "atp_star", "attribution_patch", "eap", "init_from_env", "integrated_gradients",
    "launched_world", "mean_over_pairs", "message_sweep", "over_interventions", "over_pairs",
]
