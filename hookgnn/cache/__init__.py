"""The activations of one run: in memory or on disk (what ``run_with_cache`` returns).

* :mod:`~hookgnn.cache.cache`: :class:`ActivationCache`, the activations (and gradients) of one run;
* :mod:`~hookgnn.cache.disk`: activations written to files as they are made (``device="disk"``);
* :mod:`~hookgnn.cache.grad_taps`: gradients taken at hook points one at a time.

Below :mod:`hookgnn.hooks`, which builds them. :class:`~hookgnn.store.ActivationStore`
(activations of a whole dataset) runs a model, so it lives above, in :mod:`hookgnn.store`.
"""

from typing import Any

from hookgnn.cache.cache import ActivationCache

__all__ = ["ActivationCache"]


def __getattr__(name: str) -> Any:
    # 0.1 alias, removed in 0.3: act_name lives in hookgnn.names
    if name == "act_name":
        from hookgnn import names
        from hookgnn._moved import moved_name

        return moved_name(__name__, name, names)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
