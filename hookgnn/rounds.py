"""What a round module tells exact local recomputation (AtP*) about its ``forward``.

:class:`RoundRoles` is the part of the rounds protocol (the round methods of
:class:`~hookgnn.hooks.HookedRootModule`) that :mod:`hookgnn.patching.local` reads:
how the module's ``forward`` arguments are indexed, which one carries the node state,
and where to start looking for its receptive field. The starting point is only a hint:
the local engine checks it against full calls of the round on the graph at hand and
widens it, or refuses, when it is wrong.

A hookgnn processor (:class:`~hookgnn.nn.HookedMessagePassing`) declares the three
class attributes that :func:`declared_roles` reads; a wrapped PyTorch Geometric model
answers for its layers in :mod:`hookgnn.interop.pyg`.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import nn


class RoundRoles(NamedTuple):
    """How one round module is called, for exact local recomputation.

    ``input_roles``: argument name -> ``"node"`` (row per node), ``"edge"`` (row per
    edge), ``"edge_index"`` or ``"pass"`` (passed as it is). ``state_arg``: the argument
    holding the node state. ``receptive_hops``: the output at ``v`` is first tried from
    the in-edges of the nodes fewer than this many hops upstream of ``v``.
    ``reach_hops``: how many hops a changed state travels in one call (the number of
    message-passing steps the module takes per call).

    >>> RoundRoles({"x": "node", "edge_index": "edge_index"}, "x", 1, 1).state_arg
    'x'
    """

    input_roles: dict[str, str]
    state_arg: str
    receptive_hops: int
    reach_hops: int


def declared_roles(module: nn.Module) -> RoundRoles:
    """The :class:`RoundRoles` a module declares with the class attributes ``input_roles``,
    ``state_arg`` (default ``"h"``), ``receptive_hops`` and ``reach_hops`` (default 1).

    >>> from hookgnn.nn import MPNN
    >>> declared_roles(MPNN(2)).state_arg
    'h'
    """
    roles = getattr(module, "input_roles", None)
    if roles is None:
        raise TypeError(f"{type(module).__name__} does not declare input_roles, state_arg and receptive_hops, so its "
                        "rounds cannot be recomputed locally (see hookgnn.patching.local); declare them as class "
                        "attributes, or use exact patching (hookgnn.patching.patch)")
    return RoundRoles(dict(roles), str(getattr(module, "state_arg", "h")), int(getattr(module, "receptive_hops", 1)),
                      int(getattr(module, "reach_hops", 1)))
