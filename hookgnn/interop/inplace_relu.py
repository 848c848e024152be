"""A wrapped model's ``nn.ReLU`` in place over the output of the ``nn.Linear`` before it in an ``nn.Sequential``.

In a message or update MLP ``nn.Sequential(Linear, ReLU, Linear)`` the first layer's output
:math:`y = x W^\\top + b` is read by the relu alone, which makes a second tensor of the same size,
:math:`r = \\max(y, 0)`; at 20 IG copies of every edge, writing that fresh ``[R, d]`` buffer is a memory-bound
pass of its own. The relu can write :math:`r` into :math:`y`'s memory instead (``torch.relu_``: the same values,
bit for bit) wherever nothing else reads :math:`y` afterwards, which :class:`InplaceRelus` makes sure of for
the duration of one :class:`~hookgnn.interop.session.Session`:

* the relu is called by the sequential's own loop, which the session replaces (an instance ``forward``, deleted
  on exit) by the same loop, so the tensor it passes from the layer to the relu goes nowhere else;
* the layer is an exact ``nn.Linear`` running its own (or hookgnn's fast, :mod:`hookgnn.interop.fast_leaves`)
  ``forward``, so :math:`y` is a fresh tensor;
* its hook point has no backward hook and only :func:`~hookgnn.points.transient` forward hooks (hookgnn's
  gradient taps: they keep nothing and return :math:`y` or a view of it) or none; a cache, a patching hook or
  any other hook that may keep or replace :math:`y` turns it off;
* neither module has a forward (pre-)hook or a backward hook other than the session's, and there is no global
  one (:func:`~hookgnn.interop.fast_leaves.outside_hooks`);
* the relu is an exact ``nn.ReLU`` on a large input (:data:`~hookgnn.interop.relu_linear.LARGE` entries); not
  during the discovery forward.

With a gradient (:func:`~hookgnn.interop.relu_linear.takes_relu`) the relu then runs
:func:`~hookgnn.interop.relu_linear.relu_`, whose output autograd sees as a new tensor with
:func:`~hookgnn.interop.relu_linear.relu`'s backward (so the fused relu-linear backward still takes it), and
which bumps :math:`y`'s version: a node that had saved :math:`y` would raise in the backward, never read the
relu's output. The loop also hands the relu's output to the next module, where that is an exact ``nn.Linear``,
as read by it alone (:func:`~hookgnn.interop.relu_linear.hand_over`): where that layer's backward is the fused
one, inside a single backward (:func:`~hookgnn.cache.grad_taps.single_backward`, hookgnn's gradient taps) it
writes the input gradient over the relu's output, its last reader, instead of into a fresh buffer. Without one (grad mode off, as in EAP-IG's base and source runs, or an input that needs none:
:func:`~hookgnn.interop.relu_linear.takes_plain_inplace`) it is torch's own ``torch.relu_``. Elsewhere every
call is the model's own.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import Any

from torch import Tensor, nn
from torch.nn.modules import module as torch_module

from hookgnn.interop import relu_linear as rl
from hookgnn.interop.fast_leaves import outside_hooks
from hookgnn.points import HookPoint

_Pairs = dict[int, tuple[nn.Module, nn.Module]]
_Found = tuple[list[tuple[nn.Sequential, _Pairs]], int]
_CANDIDATES: weakref.WeakKeyDictionary[nn.Module, _Found] = weakref.WeakKeyDictionary()


def _sequentials(root: nn.Module) -> _Found:
    """The exact ``nn.Sequential`` modules inside ``root`` with an exact ``nn.Linear`` right before an exact
    ``nn.ReLU``, each with its pairs (:func:`_pairs`), and the widest such layer's ``out_features`` (0: none).
    The search is cached per root: a sequential whose modules were replaced since keeps its old pairs, which
    its loop then never matches (and a new pair is not found), so a stale entry costs speed, never a wrong value."""
    found = _CANDIDATES.get(root)
    if found is None:
        seqs = [(m, p) for m in root.modules() if type(m) is nn.Sequential for p in [_pairs(m)] if p]
        found = seqs, max((lin.out_features for _, p in seqs for lin, _ in p.values()), default=0)
        _CANDIDATES[root] = found
    return found


def _pairs(seq: nn.Sequential) -> _Pairs:
    """Position of the relu -> (the linear before it, the relu), for each adjacent exact pair of ``seq``."""
    mods = list(seq._modules.values())
    return {i: (mods[i - 1], mods[i]) for i in range(1, len(mods))
            if type(mods[i - 1]) is nn.Linear and type(mods[i]) is nn.ReLU}


def keeps_nothing(hp: HookPoint | None) -> bool:
    """Whether what ``hp`` passes on is its activation (or a view of it) that no hook keeps: no hook point, or
    no backward hook and only :func:`~hookgnn.points.transient` forward hooks.

    >>> from hookgnn.points import transient
    >>> hp = HookPoint()
    >>> empty = keeps_nothing(hp)
    >>> with hp.add_hook(transient(lambda act, hook: None)):
    ...     tap = keeps_nothing(hp)
    >>> with hp.add_hook(lambda act, hook: None):
    ...     other = keeps_nothing(hp)
    >>> empty, tap, other
    (True, True, False)

    :param hp: the hook point of a linear layer's output, or ``None`` (it has none).
    """
    return hp is None or (not hp._bwd and all(getattr(e.fn, "transient", False) for e in hp._fwd))


def _backward_hooks(module: nn.Module) -> bool:
    return bool(module._backward_hooks or module._backward_pre_hooks or torch_module._global_backward_hooks
                or torch_module._global_backward_pre_hooks)


class InplaceRelus:
    """The in-place relus of one session (module docstring): :meth:`install` on entry, :meth:`linear_done` from
    the session's hook on each layer, ``grant`` read by the relu's fast forward.

    >>> import torch
    >>> mlp = nn.Sequential(nn.Linear(3, 64), nn.ReLU())
    >>> own = {id(m): frozenset() for m in mlp}
    >>> unset = []
    >>> relus = InplaceRelus()
    >>> relus.install(mlp, 1000, own, unset)
    >>> [(type(m).__name__, name) for m, name in unset], sorted(relus.feeds) == [id(mlp[0])]
    ([('Sequential', 'forward')], True)
    >>> torch.equal(mlp(torch.ones(2, 3)), torch.relu(mlp[0](torch.ones(2, 3))))
    True
    >>> del vars(mlp)["forward"]
    """

    def __init__(self) -> None:
        #: the tensor the relu being called may overwrite (set by a sequential's loop for that one call)
        self.grant: Tensor | None = None
        #: the last feeding layer's output, where it is fresh and kept by nothing
        self.fresh: Tensor | None = None
        #: id of each layer that feeds a relu -> the ids of the session's own forward hooks on it
        self.feeds: dict[int, frozenset[int]] = {}
        self._done: set[int] = set()

    def install(self, root: nn.Module, edges: int, own: dict[int, frozenset[int]],
                unset: list[tuple[Any, str]]) -> None:
        """Give each sequential inside ``root`` (a ``MessagePassing`` module about to propagate over ``edges``
        edges) with a linear -> relu pair whose modules the session hooked (``own``: module id -> the ids of
        its hooks there, only for modules running their own or hookgnn's ``forward``) the loop that grants the
        relu its input; each added to ``unset`` as ``(module, "forward")``. Once per root and session, and not
        where ``edges`` rows of the layer's output would be too few (:data:`~hookgnn.interop.relu_linear.LARGE`
        entries) for an in-place relu to pay: a tiny forward keeps torch's own sequential.

        :param root: the module whose sequentials to give the loop.
        :param edges: the number of edges it propagates over (the rows of a message MLP).
        :param own: the session's hook ids per module it hooked without a foreign instance ``forward``.
        :param unset: the session's list of instance attributes to delete on exit.
        """
        if id(root) in self._done:
            return
        self._done.add(id(root))
        seqs, widest = _sequentials(root)
        if edges * widest < rl.LARGE:  # a tiny forward: nothing to do
            return
        for seq, found in seqs:
            pairs = {i: (lin, relu) for i, (lin, relu) in found.items()
                     if id(lin) in own and id(relu) in own and edges * lin.out_features >= rl.LARGE}
            if not pairs or "forward" in vars(seq):
                continue
            vars(seq)["forward"] = self._loop(seq, pairs)
            unset.append((seq, "forward"))
            for linear, _ in pairs.values():
                self.feeds[id(linear)] = own[id(linear)]

    def linear_done(self, linear: nn.Module, out: Tensor, hp: HookPoint | None) -> None:
        """Called by the session's hook on a feeding layer with what the call returns (after its hook point
        ``hp``): remember it as fresh where nothing else may keep it.

        :param linear: the layer.
        :param out: its output as the forward goes on with it.
        :param hp: the hook point it went through (``None``: none).
        """
        self.fresh = out if (out.numel() >= rl.LARGE and keeps_nothing(hp) and not _backward_hooks(linear)
                             and not outside_hooks(linear, self.feeds[id(linear)])) else None

    def _loop(self, seq: nn.Sequential, pairs: _Pairs) -> Callable[[Any], Any]:
        def forward(input: Any) -> Any:  # noqa: A002 - nn.Sequential.forward's name
            prev = relu_out = None
            for i, module in enumerate(seq._modules.values()):
                pair = i in pairs and pairs[i][0] is prev and pairs[i][1] is module
                if pair and input is self.fresh and not _backward_hooks(module):
                    self.fresh, self.grant = None, input
                    try:
                        input = module(input)
                    finally:
                        self.grant = None
                else:
                    if input is relu_out and type(module) is nn.Linear:
                        rl.hand_over(input)  # this layer alone reads the relu's output
                    input = module(input)
                relu_out = input if pair else None
                prev = module
            return input

        return forward
