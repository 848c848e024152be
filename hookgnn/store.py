"""A dataset of activations on disk, keyed by (graph, round, node / edge), with hint labels for probes.

:meth:`ActivationStore.write` runs a model over many graphs (an iterable of graphs or
batches) and appends the rows of the chosen hook points to one file per hook point,
with the labels asked for (task fields such as the hints ``reach_h`` or outputs ``pi``)
beside them; :class:`ActivationStore` opens the folder again later and maps the files,
so a probe or a sparse dictionary can be trained on more activations than fit in RAM.

Layout of the folder: ``store.json`` (hook points with axis, round, place inside the round,
row shape and dtype; labels with location and shape; one entry per graph: its node, edge and graph rows and
rounds), and raw little-endian tensors ``hooks/NNN.bin``, ``labels/NNN.bin`` and ``edges.bin`` (each graph's
``edge_index`` ``[2, E_g]`` over its own nodes, in the order of its edge rows: what pointer probes need).

Keys: row :math:`i` of hook ``h`` belongs to ``keys(h)[i] = (graph, round, item)``;
``round`` is the hook point's round (-1 outside rounds), ``item`` the node, edge or
graph index within its graph. A time-major label (a hint ``[T, items]``) is stored per
graph with its ``T`` steps; :meth:`ActivationStore.probe_data` pairs the state after
round :math:`t` with hint step :math:`\\min(t + 1, T - 1)`, the step that round's output
predicts (:class:`~hookgnn.models.ModelOutput`).
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from hookgnn.graph import Graph
from hookgnn.hooks import HookedRootModule, NameFilter
from hookgnn.names import relative_hook_name
from hookgnn.outpaths import OutputPathError, writable_folder

FORMAT, VERSION = "hookgnn-activations", 1
_ROW_AXES = ("node", "edge", "graph")


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _append(path: Path, t: Tensor) -> None:
    """Append ``t``'s bytes to ``path``; a full disk raises ``OSError`` (``ENOSPC``) naming the file (a file
    write, not numpy's ``tofile``, whose buffered small writes can fail unseen)."""
    try:
        with open(path, "ab") as f:
            if t.numel():
                f.write(t.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().data)
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        raise OSError(errno.ENOSPC, f"no space left on the disk while appending {t.numel() * t.element_size()} bytes "
                      f"to {os.fspath(path)!r}; the store there is incomplete (write it again to a folder on a "
                      "larger disk)") from e


def _map(path: Path, dtype: torch.dtype, shape: tuple[int, ...]) -> Tensor:
    if int(np.prod(shape)) == 0 or not path.exists() or path.stat().st_size == 0:
        return torch.empty(shape, dtype=dtype)
    raw = torch.from_numpy(np.memmap(path, dtype=np.uint8, mode="c"))
    return raw.view(dtype).reshape(shape)


class ActivationStore:
    """Activations of many graphs on disk (module docstring); open one with ``ActivationStore(folder)``.

    >>> import tempfile
    >>> from hookgnn import HookedGNN
    >>> from hookgnn.tasks import get_task
    >>> task = get_task("bfs")
    >>> model = HookedGNN("mpnn", 8, node_in=2, edge_in=1, spec=task.spec, max_steps=4)
    >>> graphs = [task.sample(2, "path", seed=s, n=4) for s in range(3)]      # 3 batches of 2 graphs
    >>> store = ActivationStore.write(tempfile.mkdtemp(), model, graphs, "update", labels=["reach_h"], steps=3)
    >>> store.num_graphs, store.activations("layers.2.hook_update").shape
    (6, torch.Size([24, 8]))
    >>> x, y, keys = store.probe_data("update", "reach_h")
    >>> x.shape, y.shape, keys[0].tolist()
    (torch.Size([72, 8]), torch.Size([72]), [0, 0, 0])
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        meta_path = self.folder / "store.json"
        if not meta_path.is_file():
            raise FileNotFoundError(f"{os.fspath(self.folder)!r} holds no activation store (no store.json)")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{os.fspath(meta_path)!r} is not a hookgnn activation store")
        self.meta = meta
        #: per graph: {"node": rows, "edge": rows, "graph": 1, "rounds": rounds run, "steps": {label: T}}
        self.graphs = meta["graphs"]

    # -------------------------------------------------------------- writing
    @classmethod
    def write(
        cls,
        folder: str | os.PathLike[str],
        model: HookedRootModule,
        graphs: Iterable[Graph],
        names_filter: NameFilter | str,
        labels: Sequence[str] = (),
        overwrite: bool = False,
        **forward_kwargs: Any,
    ) -> ActivationStore:
        """Run ``model`` on every graph (or batch) of ``graphs`` and store the rows of the hook
        points ``names_filter`` selects (a short per-round name such as ``"update"`` means that
        hook point in every round) and the fields ``labels`` of each graph.

        The folder is checked before any forward: it must be writable and hold no store
        unless ``overwrite``; hook points must be on the node, edge or graph axis, and the
        first graph must carry every label.
        """
        names = _resolve(model, names_filter)
        bad = [n for n in names if model.hook_dict[n].axis not in _ROW_AXES]
        if bad:
            raise ValueError(f"an activation store keeps node-, edge- and graph-axis hook points; {bad} are on "
                             f"{sorted({model.hook_dict[n].axis for n in bad})}")
        root = _checked_folder(folder, overwrite)
        it = iter(graphs)
        first = next(it, None)
        if first is None:
            raise ValueError("graphs is empty: nothing to store")
        missing = [name for name in labels if name not in first.fields]
        if missing:
            raise KeyError(f"the first graph has no field {missing} to store as labels; it has {sorted(first.fields)}")
        (root / "hooks").mkdir(exist_ok=True)
        (root / "labels").mkdir(exist_ok=True)
        hooks: dict[str, dict[str, Any]] = {}
        label_meta: dict[str, dict[str, Any]] = {}
        per_graph: list[dict[str, int]] = []
        places = model.round_places
        for batch in _chain(first, it):
            with torch.no_grad():
                _, cache = model.run_with_cache(batch, names_filter=names, **forward_kwargs)
            order = _edge_order(batch)
            rounds = forward_kwargs.get("steps") or getattr(model, "num_rounds", 0)
            fired = [n for n in names if n in cache]  # e.g. rounds beyond steps= do not run
            if hooks and fired != list(hooks):
                raise ValueError(f"graph {len(per_graph)} reached hook points {fired}, the first graph {list(hooks)}: "
                                 "a store needs the same hook points from every graph (fix steps=)")
            for name in fired:
                act = cache[name]
                axis = model.hook_dict[name].axis
                act = act[order] if axis == "edge" and order is not None else act
                entry = hooks.setdefault(name, {"file": f"hooks/{len(hooks):03d}.bin", "axis": axis,
                                                "round": places[name][0] if name in places else -1,
                                                "place": places[name][1] if name in places else name,
                                                "shape": list(act.shape[1:]), "dtype": _dtype_name(act.dtype),
                                                "rows": 0})
                _check_rows(entry, act, name)
                _append(root / entry["file"], act)
                entry["rows"] += act.shape[0]
            for name in labels:
                _store_label(root, label_meta, name, batch, order)
            _store_edges(root / "edges.bin", batch, order)
            edges = torch.bincount(batch.edge_batch, minlength=batch.num_graphs).tolist()
            steps = {k: int(f.value.shape[0]) for k, f in batch.fields.items() if k in labels and f.time}
            for i in range(batch.num_graphs):
                per_graph.append({"node": int(batch.ptr[i + 1] - batch.ptr[i]), "edge": int(edges[i]), "graph": 1,
                                  "rounds": int(rounds), "steps": steps})
        meta = {"format": FORMAT, "version": VERSION, "hooks": hooks, "labels": label_meta, "graphs": per_graph,
                "edges": "edges.bin"}
        (root / "store.json").write_text(json.dumps(meta))
        return cls(root)

    # -------------------------------------------------------------- reading
    @property
    def num_graphs(self) -> int:
        """How many graphs the store holds."""
        return len(self.graphs)

    @property
    def hooks(self) -> list[str]:
        """The stored hook points, in model order."""
        return list(self.meta["hooks"])

    def activations(self, hook: str) -> Tensor:
        """Every stored row of ``hook`` (all graphs, in order), mapped from its file."""
        entry = self._hook(hook)
        return _map(self.folder / entry["file"], getattr(torch, entry["dtype"]),
                    (entry["rows"], *entry["shape"]))

    def keys(self, hook: str) -> Tensor:
        """``[rows, 3]``: (graph, round, item) of every row of :meth:`activations`."""
        entry = self._hook(hook)
        counts = torch.tensor([g[entry["axis"]] for g in self.graphs], dtype=torch.long)
        graph = torch.repeat_interleave(torch.arange(len(counts)), counts)
        starts = torch.repeat_interleave(torch.cumsum(counts, 0) - counts, counts)
        item = torch.arange(int(counts.sum())) - starts
        return torch.stack([graph, torch.full_like(graph, entry["round"]), item], 1)

    def graph_rows(self, hook: str, graph: int) -> Tensor:
        """The rows of ``hook`` that belong to graph ``graph``."""
        entry = self._hook(hook)
        if not 0 <= graph < self.num_graphs:
            raise IndexError(f"graph {graph} is not in the store ({self.num_graphs} graphs)")
        counts = [g[entry["axis"]] for g in self.graphs]
        start = sum(counts[:graph])
        return self.activations(hook)[start:start + counts[graph]]

    def edge_index(self) -> Tensor:
        """``[2, E]``: the edges of every stored graph over the stored node rows (graph ``g``'s node
        ids offset by the nodes of the graphs before it), in the order of the edge rows.

        >>> import tempfile
        >>> from hookgnn import HookedGNN
        >>> from hookgnn.tasks import get_task
        >>> task = get_task("bfs")
        >>> model = HookedGNN("mpnn", 4, node_in=2, edge_in=1, spec=task.spec, max_steps=2)
        >>> store = ActivationStore.write(tempfile.mkdtemp(), model, [task.sample(2, "path", n=3)], "update")
        >>> store.edge_index().shape, int(store.edge_index().max()) < 6
        (torch.Size([2, 14]), True)
        """
        if "edges" not in self.meta:
            raise ValueError(f"the store at {os.fspath(self.folder)!r} was written without edge indices (an older "
                             "hookgnn): write it again to probe pointer hints from it")
        counts = torch.tensor([g["edge"] for g in self.graphs], dtype=torch.long)
        nodes = torch.tensor([g["node"] for g in self.graphs], dtype=torch.long)
        local = _map(self.folder / self.meta["edges"], torch.long, (int(counts.sum()), 2)).T
        offsets = torch.repeat_interleave(torch.cumsum(nodes, 0) - nodes, counts)
        return local + offsets

    def node_graph(self) -> Tensor:
        """``[N]``: the graph of every stored node row."""
        counts = torch.tensor([g["node"] for g in self.graphs], dtype=torch.long)
        return torch.repeat_interleave(torch.arange(len(counts)), counts)

    def labels(self, name: str) -> Tensor:
        """Every stored value of label ``name``: ``[items, ...]``, or for a time-major label the graphs'
        ``[T_g, items_g, ...]`` blocks flattened one after another (see :meth:`label_at`)."""
        entry = self._label(name)
        return _map(self.folder / entry["file"], getattr(torch, entry["dtype"]), (entry["values"], *entry["shape"]))

    def label_at(self, name: str, step: int | None = None) -> Tensor:
        """Label ``name`` of every item of every graph, ``[items, ...]``; a time-major one at hint
        ``step`` (clipped to each graph's last step)."""
        entry, values = self._label(name), self.labels(name)
        if not entry["time"]:
            return values
        if step is None:
            raise ValueError(f"label {name!r} is time-major (a hint): give the step")
        parts, at = [], 0
        for g in self.graphs:
            n, steps = g[entry["location"]], g["steps"][name]
            block = values[at:at + steps * n].reshape(steps, n, *entry["shape"])
            parts.append(block[min(step, steps - 1)])
            at += steps * n
        return torch.cat(parts)

    def probe_data(self, short: str, label: str) -> tuple[Tensor, Tensor, Tensor]:
        """``(x, y, keys)`` for a probe from hook points ``short`` (e.g. ``"update"``, every stored
        round) to ``label``: rows of every round stacked, with the hint step :math:`t + 1` for
        round :math:`t` (a field that is not time-major: the same label every round)."""
        entry = self._label(label)
        rel = relative_hook_name(short)
        hooks = [h for h in self.hooks if self._at(h, rel)]
        if not hooks:
            raise KeyError(f"no stored hook point is {short!r}; stored: {self.hooks}")
        xs, ys, ks = [], [], []
        for h in hooks:
            if self._hook(h)["axis"] != entry["location"]:
                raise ValueError(f"{h} has a row per {self._hook(h)['axis']} but label {label!r} one per "
                                 f"{entry['location']}")
            t = self._hook(h)["round"]
            xs.append(self.activations(h))
            ys.append(self.label_at(label, t + 1 if entry["time"] else None))
            ks.append(self.keys(h))
        return torch.cat(xs), torch.cat(ys), torch.cat(ks)

    def _hook(self, hook: str) -> dict[str, Any]:
        try:
            return self.meta["hooks"][hook]
        except KeyError:
            raise KeyError(f"hook point {hook!r} is not in the store; stored: {self.hooks}") from None

    def _at(self, hook: str, rel: str) -> bool:
        """Whether ``hook`` is the hook point ``rel`` of a round (or ``rel`` itself outside
        rounds), from the place the model's rounds protocol gave when the store was written."""
        place = self._hook(hook).get("place")
        if place is None:  # a store written by hookgnn 0.1 recorded no place: 0.1's rule, the name's end
            return hook.endswith(rel)
        return place == rel

    def _label(self, name: str) -> dict[str, Any]:
        try:
            return self.meta["labels"][name]
        except KeyError:
            raise KeyError(f"label {name!r} is not in the store; stored: {sorted(self.meta['labels'])}") from None


def _resolve(model: HookedRootModule, names_filter: NameFilter | str) -> list[str]:
    if isinstance(names_filter, str) and names_filter not in model.hook_dict:
        rel = relative_hook_name(names_filter)
        family = [n for n, (_, r) in model.round_places.items() if r == rel]
        if family:
            return family
    return [hp.name for hp in model.hook_points(names_filter)]


def _checked_folder(folder: str | os.PathLike[str], overwrite: bool) -> Path:
    root = Path(folder)
    if (root / "store.json").exists() and not overwrite:
        raise OutputPathError(f"{os.fspath(root)!r} already holds an activation store; pass overwrite=True to "
                              "replace it")
    root = writable_folder(root)
    for sub in ("hooks", "labels"):
        for old in (root / sub).glob("*.bin") if (root / sub).is_dir() else ():
            old.unlink()
    (root / "edges.bin").unlink(missing_ok=True)
    (root / "store.json").unlink(missing_ok=True)
    return root


def _chain(first: Graph, rest: Iterable[Graph]) -> Iterable[Graph]:
    yield first
    yield from rest


def _edge_order(batch: Graph) -> Tensor | None:
    """The permutation that groups edges by graph, or ``None`` when they already are."""
    eb = batch.edge_batch
    if eb.numel() < 2 or bool((eb[1:] >= eb[:-1]).all()):
        return None
    return torch.argsort(eb, stable=True)


def _check_rows(entry: dict[str, Any], act: Tensor, name: str) -> None:
    if list(act.shape[1:]) != entry["shape"] or _dtype_name(act.dtype) != entry["dtype"]:
        raise ValueError(f"{name} gave rows of shape {list(act.shape[1:])} and {act.dtype}, earlier graphs "
                         f"{entry['shape']} and {entry['dtype']}: a store keeps one row shape per hook point")


def _store_edges(path: Path, batch: Graph, order: Tensor | None) -> None:
    """Append each graph's edges over its own nodes, ``[E_g, 2]`` rows, in stored edge order."""
    ei = batch.edge_index if order is None else batch.edge_index[:, order]
    eb = batch.edge_batch if order is None else batch.edge_batch[order]
    _append(path, (ei - batch.ptr[eb]).T.to(torch.long))


def _store_label(root: Path, meta: dict[str, dict[str, Any]], name: str, batch: Graph, order: Tensor | None) -> None:
    if name not in batch.fields:
        raise KeyError(f"a graph has no field {name!r} to store as a label")
    f = batch.fields[name]
    value = f.value
    if f.location == "edge" and order is not None:
        value = value.index_select(f.item_dim, order)
    shape = list(value.shape[f.item_dim + 1:])
    entry = meta.setdefault(name, {"file": f"labels/{len(meta):03d}.bin", "location": f.location, "time": f.time,
                                   "shape": shape, "dtype": _dtype_name(value.dtype), "values": 0})
    if shape != entry["shape"] or f.time != entry["time"] or f.location != entry["location"]:
        raise ValueError(f"label {name!r} changed shape or kind between graphs")
    if not f.time:
        _append(root / entry["file"], value)
        entry["values"] += value.shape[0]
        return
    counts = {"node": batch.ptr.diff(), "edge": torch.bincount(batch.edge_batch, minlength=batch.num_graphs),
              "graph": torch.ones(batch.num_graphs, dtype=torch.long)}[f.location].tolist()
    start = 0
    for n in counts:  # each graph's [T, n, ...] block, whole
        block = value[:, start:start + n]
        _append(root / entry["file"], block)
        entry["values"] += block.shape[0] * n
        start += n
