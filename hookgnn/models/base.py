"""What every hooked model of :mod:`hookgnn.models` shares: its output and its rounds.

:class:`ModelOutput` is what a model returns; :class:`LayerStack` is the base of every model
whose round ``t`` is the module ``layers.t`` (:class:`~hookgnn.models.HookedGNN` and the
``from_layers`` stacks, :class:`~hookgnn.models.LayeredGNN`): it answers the rounds protocol
(:mod:`hookgnn.rounds`) once for all of them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from torch import Tensor, nn

from hookgnn.hooks import HookedRootModule, HookPoint
from hookgnn.nn.wiring import ResolvedLink, processor_links


@dataclass
class ModelOutput(Mapping[str, Tensor]):
    """What a :class:`HookedGNN` returns: raw output predictions by feature name.

    ``hints[name][t]`` is the prediction, after round ``t``, of hint step ``t + 1``
    (``[T, ...]``); ``hidden`` is the final node state ``[N, d]``.

    >>> import torch
    >>> out = ModelOutput({"d": torch.zeros(3)})
    >>> list(out), out["d"].shape
    (['d'], torch.Size([3]))

    :param outputs: raw output predictions by feature name.
    :param hints: hint predictions by name, ``[T, ...]``: ``hints[name][t]`` predicts hint step ``t + 1``.
    :param hidden: the final node states ``[N, d]`` (``None`` if the model keeps none).
    """

    outputs: dict[str, Tensor]
    hints: dict[str, Tensor] = field(default_factory=dict)
    hidden: Tensor | None = None

    def __getitem__(self, name: str) -> Tensor:
        try:
            return self.outputs[name]
        except KeyError:
            raise KeyError(f"model has no output {name!r}; outputs: {sorted(self.outputs)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.outputs)

    def __len__(self) -> int:
        return len(self.outputs)


class LayerStack(HookedRootModule):
    """A hooked model whose round ``t`` is the module ``self.layers[t]`` (an ``nn.ModuleList``);
    subclasses define ``layers`` and :meth:`state_hook`."""

    layers: nn.ModuleList

    def find_rounds(self) -> dict[str, tuple[int, str]]:
        """Round ``t`` is the module ``layers.t``: its hook points and their paths inside it."""
        return {f"layers.{t}.{rel}": (t, rel) for t, layer in enumerate(self.layers)
                for rel, module in layer.named_modules() if isinstance(module, HookPoint)}

    def round_module(self, t: int) -> nn.Module:
        """The processor of round ``t`` (``layers.t``)."""
        if not 0 <= t < len(self.layers):
            raise IndexError(f"round {t} does not exist; rounds are 0 .. {len(self.layers) - 1}")
        return self.layers[t]

    def round_links(self, t: int) -> list[ResolvedLink]:
        """The links round ``t``'s processor declares (its ``links()`` method,
        :func:`~hookgnn.nn.wiring.processor_links`), ``{x}`` = ``hook_node_embed`` and
        ``{e}`` = ``hook_edge_embed``."""
        return processor_links(self, t)
