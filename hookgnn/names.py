"""Hook names: the full name of a round's activation and a hook's path inside its round.

A :class:`~hookgnn.models.HookedGNN` names round ``t``'s hook points ``layers.{t}.<path>``;
other models say where their rounds are through the rounds protocol (:mod:`hookgnn.rounds`).
"""

from __future__ import annotations


def act_name(short: str, layer: int) -> str:
    """Full hook name of a per-round activation.

    >>> act_name("message", 2), act_name("update_mlp.hook_post", 0)
    ('layers.2.hook_message', 'layers.0.update_mlp.hook_post')

    :param short: a site (``"message"``, ``"update"``, ...) or a sub-path ending in a hook point
        (``"update_mlp.hook_post"``).
    :param layer: the round (layer index).
    """
    return f"layers.{layer}.{relative_hook_name(short)}"


def relative_hook_name(short: str) -> str:
    """A hook's path inside its round from a short name.

    >>> relative_hook_name("message"), relative_hook_name("hook_src"), relative_hook_name("message_mlp.hook_post")
    ('hook_message', 'hook_src', 'message_mlp.hook_post')
    """
    return short if "." in short or short.startswith("hook_") else f"hook_{short}"
