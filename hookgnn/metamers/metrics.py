"""How far a metamer is from its reference: in activations, features, structure and locally.

Every batch metric compares each graph of ``other`` (a ``Graph`` batch of ``k`` graphs,
each with the reference's ``n`` nodes) with the single ``reference`` and returns a
``[k]`` tensor. ``node_map`` (``[n]`` or ``[k, n]``) says that node ``node_map[j, i]``
of graph ``j`` plays the role of reference node ``i`` (default: the identity); e.g. for
``other = permute(reference, perm)``, ``node_map = argsort(perm)``.

* :func:`relative_distance` :math:`\\lVert a - b \\rVert^2 / \\lVert b \\rVert^2`;
* :func:`activation_distance` that distance per hook, rows matched by ``node_map``;
* :func:`feature_distance` :math:`\\lVert x'_{\\pi} - x \\rVert_F / \\lVert x \\rVert_F`;
* :func:`edge_jaccard`, :func:`graph_edit_distance` (structure);
* :func:`local_metamer_space` / :func:`local_metamer_dimension`: the null space of the
  Jacobian of a hook with respect to one node's features (:func:`metamer_space`: any
  node or edge feature rows);
* :func:`volume_change`: :math:`\\log\\det J^\\top J` on the node feature space.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule
from hookgnn.metamers.activations import Forward, HookNames, Targets, capture, hook_names
from hookgnn.metamers.jacobian import input_jacobian


def relative_distance(a: Tensor, b: Tensor) -> Float[Tensor, ""]:
    """:math:`\\lVert a - b \\rVert^2 / \\lVert b \\rVert^2` (``b`` is the reference; it must not be 0).

    >>> float(relative_distance(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 0.0])))
    1.0
    """
    if a.shape != b.shape:
        raise ValueError(f"relative_distance needs equal shapes, got {tuple(a.shape)} and {tuple(b.shape)}")
    norm = b.pow(2).sum()
    if not bool(norm > 0):
        raise ValueError("relative_distance is undefined for a reference equal to 0")
    return (a - b).pow(2).sum() / norm


def _node_map(node_map: Tensor | None, k: int, n: int, device: torch.device) -> Tensor:
    if node_map is None:
        return torch.arange(n, device=device).expand(k, n)
    m = torch.as_tensor(node_map, dtype=torch.long, device=device)
    m = m.expand(k, n) if m.dim() == 1 else m
    if m.shape != (k, n) or not bool((m.sort(1).values == torch.arange(n, device=device)).all()):
        raise ValueError(f"node_map must be a permutation of range({n}) per graph ([{n}] or [{k}, {n}])")
    return m


def _split_check(reference: Graph, other: Graph) -> tuple[int, int]:
    if reference.num_graphs != 1:
        raise ValueError(f"reference must be a single graph, got a batch of {reference.num_graphs}")
    n, sizes = reference.num_nodes, other.ptr.diff()
    if bool((sizes != n).any()):
        raise ValueError(f"every graph of other needs the reference's {n} nodes, got sizes {sizes.tolist()}")
    return other.num_graphs, n


def _edge_order(reference: Graph, other: Graph, m: Tensor) -> Tensor:
    """For each reference edge (per graph of ``other``) the matching edge id of ``other``."""
    k, n = m.shape
    src, dst = reference.edge_index
    out = []
    for j in range(k):
        ref_key = m[j][src] * n + m[j][dst]
        mask = other.edge_batch == j
        ids = mask.nonzero().flatten()
        key = (other.edge_index[0, ids] - j * n) * n + (other.edge_index[1, ids] - j * n)
        a, b = ref_key.sort(stable=True), key.sort(stable=True)
        if a.values.shape != b.values.shape or not bool((a.values == b.values).all()):
            raise ValueError(f"graph {j} of other does not have the reference's edges under node_map, so "
                             "edge-axis activations cannot be matched")
        match = torch.empty_like(a.indices)
        match[a.indices] = ids[b.indices]
        out.append(match)
    return torch.cat(out)


def activation_distance(
    model: HookedRootModule, reference: Graph, other: Graph, hooks: HookNames, *,
    node_map: Tensor | None = None, forward: Forward | None = None,
) -> dict[str, Float[Tensor, " k"]]:
    """:math:`D_k = \\lVert h_k(G'_j)_{\\pi_j} - h_k(G) \\rVert^2 / \\lVert h_k(G) \\rVert^2` per hook and graph.

    Node rows are matched by ``node_map``, edge rows by their mapped endpoints (the
    edge multisets must agree), graph rows directly.

    >>> from hookgnn import HookedGNN
    >>> from hookgnn.metamers.starts import permute
    >>> _ = torch.manual_seed(0); model = HookedGNN("mpnn", 4, node_in=1, max_steps=2)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> perm = torch.tensor([2, 0, 1])
    >>> d = activation_distance(model, g, permute(g, perm), "layers.1.hook_update", node_map=perm.argsort())
    >>> float(d["layers.1.hook_update"][0]) < 1e-12
    True
    """
    forward = model if forward is None else forward
    names = hook_names(model, hooks)
    k, n = _split_check(reference, other)
    m = _node_map(node_map, k, n, other.device)
    targets = Targets.of(model, forward, reference, names)
    with torch.no_grad():
        acts = capture(model, forward, other, names)
    aligned = Graph.collate([Graph(x=reference.x, edge_index=reference.edge_index)] * k)
    for name in names:
        if targets.axes[name] == "node":
            acts[name] = acts[name][(m + n * torch.arange(k, device=m.device).unsqueeze(1)).reshape(-1)]
        elif targets.axes[name] == "edge":
            acts[name] = acts[name][_edge_order(reference, other, m)]
    return {name: d.detach() for name, d in targets.distances(acts, aligned).items()}


def feature_distance(
    reference: Graph, other: Graph, *, node_map: Tensor | None = None, inputs: Literal["x", "edge_attr"] = "x",
) -> Float[Tensor, " k"]:
    """:math:`\\lVert x'_{\\pi} - x \\rVert_F / \\lVert x \\rVert_F`: features relative to the reference's.

    ``inputs="x"`` compares node features (rows matched by ``node_map``);
    ``"edge_attr"`` compares edge features, edges matched by their mapped endpoints (the
    edge multisets must agree).

    >>> g = Graph(x=torch.tensor([[3.0], [4.0]]), edge_index=torch.zeros(2, 0, dtype=torch.long))
    >>> feature_distance(g, g.replace(x=torch.tensor([[3.0], [9.0]]))).tolist()
    [1.0]
    """
    if inputs not in ("x", "edge_attr"):
        raise ValueError(f"inputs must be 'x' or 'edge_attr', got {inputs!r}")
    k, n = _split_check(reference, other)
    m = _node_map(node_map, k, n, other.device)
    ref, mine = getattr(reference, inputs), getattr(other, inputs)
    if ref is None or mine is None:
        raise ValueError(f"both graphs need {inputs}")
    norm = ref.norm()
    if not bool(norm > 0):
        raise ValueError(f"feature_distance is undefined for reference {inputs} equal to 0")
    if inputs == "x":
        rows = (m + n * torch.arange(k, device=m.device).unsqueeze(1)).reshape(-1)
    else:
        rows = _edge_order(reference, other, m)
    return (mine[rows].reshape(k, ref.shape[0], -1) - ref).flatten(1).norm(dim=1) / norm


def _pair_sets(reference: Graph, other: Graph, m: Tensor) -> tuple[set[tuple[int, int]], list[set[tuple[int, int]]]]:
    k, n = m.shape
    ref = set(map(tuple, reference.edge_index.t().tolist()))
    inv = m.argsort(1)  # node of graph j -> the reference node it plays
    sets = []
    for j in range(k):
        e = other.edge_index[:, other.edge_batch == j] - j * n
        sets.append(set(map(tuple, inv[j][e].t().tolist())))
    return ref, sets


def edge_jaccard(reference: Graph, other: Graph, *, node_map: Tensor | None = None) -> Float[Tensor, " k"]:
    """:math:`|E \\cap E'_\\pi| / |E \\cup E'_\\pi|` over edge sets of ordered pairs (parallel edges
    count once, self-loops count); 1 when both are empty.

    >>> g = Graph(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> edge_jaccard(g, g.replace(edge_index=torch.tensor([[0, 2], [1, 0]]))).tolist()
    [0.3333333432674408]
    """
    k, n = _split_check(reference, other)
    ref, sets = _pair_sets(reference, other, _node_map(node_map, k, n, other.device))
    return torch.tensor([len(ref & s) / len(ref | s) if ref | s else 1.0 for s in sets])


def graph_edit_distance(reference: Graph, other: Graph, *, max_nodes: int = 7) -> Float[Tensor, " k"]:
    """Graph edit distance of the edge structures (networkx, exact), NaN above ``max_nodes``.

    Unit costs for inserting or deleting a node or an edge; nodes and edges unlabelled
    (features ignored); directed simple graphs (parallel edges once, self-loops count).
    Minimised over all node correspondences, so it is permutation-invariant. The exact
    search is exponential in the number of nodes: graphs with more than ``max_nodes``
    nodes get NaN rather than an approximate value. Needs ``networkx``.

    >>> g = Graph(x=torch.zeros(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> graph_edit_distance(g, g.replace(edge_index=torch.tensor([[2, 1], [1, 0]]))).tolist()
    [0.0]
    """
    import networkx as nx

    k, n = _split_check(reference, other)
    if n > max_nodes:
        return torch.full((k,), math.nan)
    ref, sets = _pair_sets(reference, other, _node_map(None, k, n, other.device))

    def digraph(pairs: set[tuple[int, int]]) -> nx.DiGraph:
        # networkx's edit paths ignore self-loops (networkx 3.6 gives GED 0 between a
        # loop 0->0 and an edge 0->1), so a self-loop is a node label here: substituting
        # a node with a loop for one without costs 1, deleting it costs 2 (node and loop).
        g = nx.DiGraph()
        g.add_nodes_from((i, {"loop": (i, i) in pairs}) for i in range(n))
        g.add_edges_from((u, v) for u, v in pairs if u != v)
        return g

    def loops(a: dict) -> int:
        return int(a["loop"])

    return torch.tensor([float(nx.graph_edit_distance(
        digraph(ref), digraph(s), node_subst_cost=lambda a, b: abs(loops(a) - loops(b)),
        node_del_cost=lambda a: 1 + loops(a), node_ins_cost=lambda a: 1 + loops(a))) for s in sets])


@dataclass
class NullSpace:
    """The local metamer space of a hook at some input rows.

    ``basis`` ``[P, dimension]`` is orthonormal and spans the input directions whose
    image under the Jacobian is negligible (singular value :math:`\\le` ``rtol`` times the
    largest; every direction when :math:`J = 0`); ``singular_values`` are those of J.
    """

    dimension: int
    basis: Tensor
    singular_values: Tensor
    rtol: float


def _null_space(jac: Tensor, rtol: float) -> NullSpace:
    j = jac.double()
    p = j.shape[1]
    _, s, vh = torch.linalg.svd(j, full_matrices=True)
    top = float(s.max()) if s.numel() else 0.0
    rank = int((s > rtol * top).sum()) if top > 0 else 0  # at most rtol * top: null
    return NullSpace(p - rank, vh[rank:].t().contiguous() if p else vh.new_zeros(0, 0), s, rtol)


def metamer_space(
    model: HookedRootModule, graph: Graph, hook: str, rows: Sequence[int] | None = None, *,
    inputs: Literal["x", "edge_attr"] = "x", rtol: float = 1e-5, forward: Forward | None = None,
) -> NullSpace:
    """Null space of :math:`J = \\partial h_{hook} / \\partial\\, \\mathrm{inputs}[rows]` at ``graph``.

    The input directions (features of the given node or edge rows, default all) that
    change the hook's activation only to second order: the tangent space of the
    metamer manifold through ``graph``. Its dimension counts singular values of
    :math:`J` at most ``rtol`` times the largest (all of them when :math:`J = 0`).

    >>> from hookgnn import HookedGNN
    >>> model = HookedGNN("mpnn", 4, node_in=1, edge_in=1, max_steps=1)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]), edge_attr=torch.rand(2, 1))
    >>> metamer_space(model, g, "hook_node_embed", inputs="edge_attr").dimension  # embeddings ignore edges
    2
    """
    if not rtol > 0:
        raise ValueError(f"rtol must be > 0, got {rtol}")
    return _null_space(input_jacobian(model, graph, hook, rows, inputs=inputs, forward=forward), rtol)


def local_metamer_space(
    model: HookedRootModule, graph: Graph, hook: str, node: int, *, rtol: float = 1e-5, forward: Forward | None = None,
) -> NullSpace:
    """Null space of :math:`J = \\partial h_{hook} / \\partial x_{node}` (``[M, F]``) at ``graph``.

    Moving node ``node``'s features along a basis vector changes the hook's activation
    (all of it, every node) only to second order: these are the directions of the
    local metamer manifold through ``graph`` at that node. Its dimension counts singular
    values of :math:`J` at most ``rtol`` times the largest (all ``F`` when :math:`J = 0`).
    The Jacobian is exact (autograd) in the model's dtype; use a float64 model and graph
    for ``rtol`` below about ``1e-5``.

    >>> from hookgnn import HookedGNN
    >>> model = HookedGNN("mpnn", 4, node_in=2, max_steps=1)
    >>> g = Graph(x=torch.randn(3, 2), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> local_metamer_space(model, g, "hook_node_embed", node=0).dimension
    0
    """
    if not 0 <= node < graph.num_nodes:
        raise ValueError(f"node {node} out of range for {graph.num_nodes} nodes")
    return metamer_space(model, graph, hook, [node], rtol=rtol, forward=forward)


def local_metamer_dimension(
    model: HookedRootModule, graph: Graph, hook: str, node: int, *, rtol: float = 1e-5, forward: Forward | None = None,
) -> int:
    """:attr:`NullSpace.dimension` of :func:`local_metamer_space`.

    >>> from hookgnn import HookedGNN
    >>> model = HookedGNN("mpnn", 4, node_in=2, max_steps=1)
    >>> g = Graph(x=torch.randn(3, 2), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> local_metamer_dimension(model, g, "hook_edge_embed", node=0)  # edge encodings ignore x
    2
    """
    return local_metamer_space(model, graph, hook, node, rtol=rtol, forward=forward).dimension


@dataclass
class VolumeChange:
    """:math:`\\log\\det J^\\top J` of a hook on the feature space of some nodes.

    ``logdet``: :math:`\\sum_{i=1}^{P} \\log \\sigma_i^2` over all ``dim = P`` input
    directions, ``-inf`` when ``rank < P`` (metamer directions are collapsed: volume 0).
    ``pseudo_logdet``: the same sum over the ``rank`` singular values above ``rtol``
    times the largest: the volume change of the slice orthogonal to the null space.
    """

    logdet: float
    pseudo_logdet: float
    rank: int
    dim: int


def volume_change(
    model: HookedRootModule, graph: Graph, hook: str, nodes: Sequence[int] | None = None, *,
    inputs: Literal["x", "edge_attr"] = "x", rtol: float = 1e-5, forward: Forward | None = None,
) -> VolumeChange:
    """Activation-induced volume change of the node feature space at ``graph``.

    The input manifold is :math:`\\mathbb{R}^{|S| \\times F}`, the features of the nodes
    :math:`S` (default: all), with the Euclidean metric; the hook maps it to
    :math:`\\mathbb{R}^M` with Jacobian :math:`J` (:func:`~hookgnn.metamers.jacobian.input_jacobian`).
    An infinitesimal input volume is scaled by :math:`\\sqrt{\\det J^\\top J}`, so
    ``logdet`` :math:`= \\log\\det J^\\top J = 2 \\log(\\text{scale})`. When :math:`J` is rank
    deficient (metamer directions) the determinant is 0: ``logdet = -inf`` and
    ``pseudo_logdet`` keeps the nonzero part (see :class:`VolumeChange`). With
    ``inputs="edge_attr"`` the manifold is the edge feature space of the edges ``nodes``.

    >>> from hookgnn import HookedGNN
    >>> model = HookedGNN("mpnn", 4, node_in=1, max_steps=1)
    >>> g = Graph(x=torch.randn(3, 1), edge_index=torch.tensor([[0, 1], [1, 2]]))
    >>> v = volume_change(model, g, "hook_node_embed"); (v.rank, v.dim)
    (3, 3)
    """
    if not rtol > 0:
        raise ValueError(f"rtol must be > 0, got {rtol}")
    jac = input_jacobian(model, graph, hook, nodes, inputs=inputs, forward=forward).double()
    s = torch.linalg.svdvals(jac)
    p = jac.shape[1]
    top = float(s.max()) if s.numel() else 0.0
    kept = s[s > rtol * top] if top > 0 else s[:0]
    full = float(2 * s.log().sum()) if s.numel() == p and kept.numel() == p else -math.inf
    return VolumeChange(full, float(2 * kept.log().sum()), int(kept.numel()), p)
