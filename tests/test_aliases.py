"""Every 0.1 name of the README, tutorials and docs still works for one release: it warns
(``DeprecationWarning`` naming the 0.2 spelling) and returns exactly what the new spelling returns."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

import hookgnn.interop.structure as interop_structure
from hookgnn import Graph, HookedGNN, attribution, circuits, metamers, parallel, patching, training
from hookgnn.metrics import OutputSum
from hookgnn.patching.selectors import Selection
from hookgnn.spec import FeatureSpec
from hookgnn.tasks import get_task

METRIC = OutputSum("d")
#: These tests call the 0.1 names on purpose: their warnings are checked here, not turned into errors
#: by the suite-wide filter in pyproject.toml (pytest.warns re-emits the ones it does not match).
pytestmark = pytest.mark.filterwarnings("default::DeprecationWarning")


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = HookedGNN("mpnn", d_hidden=5, node_in=1, spec={"d": FeatureSpec("output", "node", "scalar")}, max_steps=2)
    g = Graph(x=torch.randn(5, 1), edge_index=torch.tensor([[0, 1, 2, 3, 4, 0], [1, 2, 3, 4, 0, 2]]))
    return model, g, g.replace(x=torch.randn(5, 1))


def numbers(result: Any) -> list[torch.Tensor | float]:
    """Every number a result holds, for a bit-for-bit comparison."""
    if isinstance(result, (float, int)):
        return [float(result)]
    if isinstance(result, torch.Tensor):
        return [result]
    if isinstance(result, list):
        return [torch.tensor([hash(k) for k in result])]
    if isinstance(result, dict):
        return [torch.tensor(v) if not isinstance(v, torch.Tensor) else v for v in result.values()]
    if isinstance(result, circuits.Verified):
        return [torch.tensor(list(result.exact.values())), torch.tensor([hash(c) for c in result.ranked])]
    out: list[torch.Tensor | float] = [result.baseline]
    for name in ("values", "scores"):
        if hasattr(result, name):
            out.append(getattr(result, name))
    for name in ("delta", "grad", "by_entry", "by_row", "by_feature"):
        out += list(getattr(result, name, {}).values())
    return out


def assert_identical(old: Any, new: Any) -> None:
    a, b = numbers(old), numbers(new)
    assert len(a) == len(b) and len(a) > 0
    for x, y in zip(a, b):
        if isinstance(x, torch.Tensor):
            assert x.dtype == y.dtype and torch.equal(x, y)
        else:
            assert x == y


def cases(model, g, bad):
    """(old call, new call, words of the new spelling the warning must name)."""
    ups = [model.round_hook("update", t) for t in range(2)]
    pairs = [(g, bad), (bad, g)]
    est = attribution.attribute(model, g, bad, METRIC).rows(ups)
    src = patching.message_edges(g.edge_index, [0, 1], model)[:3]
    carriers = [m.carrier for m in src]
    scores = {"a": 1.0, "b": -3.0, "c": 0.0, "d": 2.0}
    task = get_task("bfs")
    tmodel = training.build_model(task, d_hidden=8, max_steps=4)
    batch = task.sample(2, "path", seed=0, n=4)
    return {
        "activation_sweep": (lambda: patching.activation_sweep(model, g, bad, METRIC, ups, "feature", copies=3),
                             lambda: patching.patch(model, g, bad, METRIC, patching.hooks(model, ups, "feature"),
                                                    copies=3), "patch("),
        "message_sweep": (lambda: patching.message_sweep(model, g, bad, METRIC, [1], "noising"),
                          lambda: patching.patch(model, g, bad, METRIC, patching.messages(model, [1]),
                                                 direction="noising"), "messages(model"),
        "message_patch": (lambda: patching.message_patch(model, g, bad, METRIC, src),
                          lambda: patching.path_patch(model, g, bad, METRIC, carriers, carriers, freeze=()),
                          "path_patch("),
        "attribution_patch": (lambda: patching.attribution_patch(model, g, bad, METRIC, ups, keep="rows"),
                              lambda: attribution.attribute(model, g, bad, METRIC, names_filter=ups, keep="rows"),
                              "attribute("),
        "integrated_gradients": (lambda: patching.integrated_gradients(model, g, bad, METRIC, 3),
                                 lambda: attribution.attribute(model, g, bad, METRIC, ig_steps=3), "attribute("),
        "top_n": (lambda: patching.top_n(scores, 2), lambda: circuits.select(scores, n=2), "select("),
        "above": (lambda: patching.above(scores, 0.5), lambda: circuits.select(scores, threshold=0.5), "select("),
        "verify_top": (lambda: patching.verify_top(model, g, bad, METRIC, est, k=3),
                       lambda: circuits.verify(model, g, bad, METRIC, est, k=3), "verify("),
        "training.evaluate": (lambda: training.evaluate(tmodel, task, batch),
                              lambda: training.evaluate_model(tmodel, task, batch), "evaluate_model("),
        "parallel.mean_over_pairs": (
            lambda: parallel.mean_over_pairs(attribution.atp_star, model, pairs, METRIC),
            lambda: parallel.over_pairs(attribution.atp_star, model, pairs, METRIC), "over_pairs("),
        "parallel.attribution_patch": (
            lambda: parallel.attribution_patch(model, pairs, METRIC, keep="rows"),
            lambda: parallel.over_pairs(attribution.attribute, model, pairs, METRIC, keep="rows"), "over_pairs(attribute"),
        "parallel.integrated_gradients": (
            lambda: parallel.integrated_gradients(model, pairs, METRIC, 2),
            lambda: parallel.over_pairs(attribution.attribute, model, pairs, METRIC, ig_steps=2, keep="entries"),
            "over_pairs(attribute"),
        "parallel.eap": (lambda: parallel.eap(model, pairs, METRIC, level="message"),
                         lambda: parallel.over_pairs(attribution.eap, model, pairs, METRIC, level="message"),
                         "over_pairs(eap"),
        "parallel.atp_star": (lambda: parallel.atp_star(model, pairs, METRIC),
                              lambda: parallel.over_pairs(attribution.atp_star, model, pairs, METRIC),
                              "over_pairs(atp_star"),
        "parallel.activation_sweep": (
            lambda: parallel.activation_sweep(model, pairs, METRIC, ups, over="feature"),
            lambda: parallel.over_pairs(patching.patch, model, pairs, METRIC, components=Selection(tuple(ups), "feature")),
            "over_pairs(patch"),
        "parallel.message_sweep": (
            lambda: parallel.message_sweep(model, pairs, METRIC, rounds=[0]),
            lambda: parallel.over_pairs(patching.patch, model, pairs, METRIC, components=patching.messages(model, [0])),
            "messages(model"),
    }


NAMES = ["activation_sweep", "message_sweep", "message_patch", "attribution_patch", "integrated_gradients", "top_n",
         "above", "verify_top", "training.evaluate", "parallel.mean_over_pairs", "parallel.attribution_patch",
         "parallel.integrated_gradients", "parallel.eap", "parallel.atp_star", "parallel.activation_sweep",
         "parallel.message_sweep"]


@pytest.mark.parametrize("name", NAMES)
def test_each_alias_warns_with_the_new_spelling_and_returns_identical_results(setup, name):
    old, new, spelling = cases(*setup)[name]
    with pytest.warns(DeprecationWarning, match=rf"{name.split('.')[-1]} is deprecated.*{spelling.replace('(', '[(]')}"):
        got = old()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # the new spelling itself never warns
        want = new()
    assert type(got) is type(want)
    assert_identical(got, want)


def test_every_case_is_checked(setup):
    assert sorted(cases(*setup)) == sorted(NAMES)


def test_renamed_classes_are_the_new_classes_under_their_old_names():
    with pytest.warns(DeprecationWarning, match="EdgeSpace"):
        from hookgnn.metamers import Structure
    assert Structure is metamers.EdgeSpace
    with pytest.warns(DeprecationWarning, match="HookLayout"):
        assert interop_structure.Structure is interop_structure.HookLayout
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        metamers.Nothing  # noqa: B018


def test_ig_steps_zero_is_attribution_patching_for_every_keep(setup):
    """attribute(ig_steps=0) equals the alias bit for bit whatever it keeps."""
    model, g, bad = setup
    for keep in ("all", "entries", "rows", "features"):
        with pytest.warns(DeprecationWarning):
            old = patching.attribution_patch(model, g, bad, METRIC, keep=keep)
        assert_identical(old, attribution.attribute(model, g, bad, METRIC, keep=keep))


def test_message_patch_still_refuses_graph_edge_messages_over_a_layers_own_edge_list():
    """The 0.1 ``message_patch`` checked its messages' hooks (GCN's added self-loops: row e is
    not graph edge e); its new spelling patches components, rows of the layer's own edge list,
    so the refusal is checked here, on the alias, until 0.3."""
    pytest.importorskip("torch_geometric")
    from test_own_edge_rows import GRAPH, setup as own_edge_setup, square_sum

    _, model, corrupted = own_edge_setup(GRAPH)
    edges = patching.message_edges(GRAPH.edge_index, [1], model)
    with pytest.warns(DeprecationWarning, match="message_patch is deprecated"):
        with pytest.raises(ValueError, match="axis 'none'.*own edge list"):
            patching.message_patch(model, GRAPH, corrupted, square_sum, edges[-1:])
    assert all(info.num_fwd == 0 and info.num_bwd == 0 for info in model.list_hooks())


#: 0.1 functions, called by their bare name or through a hookgnn package.
OLD_FUNCTIONS = {"activation_sweep", "message_sweep", "message_patch", "attribution_patch", "integrated_gradients",
                 "top_n", "above", "verify_top", "mean_over_pairs"}
#: 0.1 names of a package: (package, name); ``hookgnn.parallel``'s per-scorer wrappers among them.
OLD_MEMBERS = {("training", "evaluate"), ("metamers", "Structure"), ("structure", "Structure"),
               *(("parallel", n) for n in ("activation_sweep", "message_sweep", "attribution_patch",
                                           "integrated_gradients", "eap", "atp_star", "mean_over_pairs"))}
PACKAGES = ("hookgnn", "patching", "attribution", "circuits", "parallel", "training", "metamers", "structure")


def uses_of_01_names(source: str, package: str = "") -> list[str]:
    """0.1 names that ``source`` calls, reads or imports (a definition, e.g. an alias's own ``def``, is no use;
    nor is a library module re-exporting the aliases of its own package, ``package``, nor a test of an
    alias inside ``with pytest.warns(DeprecationWarning)``).

    >>> uses_of_01_names("from hookgnn.circuits import top_n\\nx = parallel.eap(m, p, f)\\ndef above(): pass")
    ['import top_n from hookgnn.circuits', 'parallel.eap']
    >>> uses_of_01_names("monkeypatch.setattr(hookgnn.training, 'evaluate', f)\\nregister_links('GINEConv', f)")
    ["setattr(training, 'evaluate')", "register_links('GINEConv')"]
    """
    import ast

    tree = ast.parse(source)
    # a 0.1 name tested on purpose: inside `with pytest.warns(DeprecationWarning, ...)`
    on_purpose = {id(n) for w in ast.walk(tree) if isinstance(w, ast.With)
                  and any("warns(DeprecationWarning" in ast.unparse(i.context_expr) for i in w.items)
                  for stmt in w.body for n in ast.walk(stmt)}
    found = []
    for node in ast.walk(tree):
        if id(node) in on_purpose:
            continue
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("hookgnn"):
            if package and node.module.startswith(package + "."):
                continue
            last = node.module.rsplit(".", 1)[-1]
            found += [f"import {a.name} from {node.module}" for a in node.names
                      if a.name in OLD_FUNCTIONS or (last, a.name) in OLD_MEMBERS]
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in OLD_FUNCTIONS:
            found.append(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            base = ast.unparse(node.value).rsplit(".", 1)[-1]
            if (base, node.attr) in OLD_MEMBERS or (base in PACKAGES and node.attr in OLD_FUNCTIONS):
                found.append(f"{base}.{node.attr}")
        elif isinstance(node, ast.Call) and node.args:
            called, args = ast.unparse(node.func).rsplit(".", 1)[-1], node.args
            text = [a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None for a in args]
            if called == "register_links" and text[0] is not None:
                found.append(f"register_links({text[0]!r})")  # a class name, the 0.1 spelling: pass the class
            elif called == "setattr" and len(args) >= 2 and text[1] is not None:  # a 0.1 name patched in a test
                base = ast.unparse(args[0]).rsplit(".", 1)[-1]
                if (base, text[1]) in OLD_MEMBERS or (base in PACKAGES and text[1] in OLD_FUNCTIONS):
                    found.append(f"setattr({base}, {text[1]!r})")
    return found


def test_the_repository_calls_no_01_name():
    """Every call site of the library, tests, tutorials, benchmarks and the docs' Python blocks
    uses the 0.2 names (the suite's warning filter catches only the code the suite runs)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    serving = {"hookgnn/_deprecated.py", "hookgnn/_moved.py", "hookgnn/parallel/scores.py",  # the aliases
               "tests/test_aliases.py", "tests/test_layout_aliases.py"}
    offenders = []
    for folder in ("hookgnn", "tests", "tutorials", "benchmarks", "docs"):
        for path in sorted((root / folder).rglob("*")):
            name = str(path.relative_to(root))
            if name in serving or path.suffix not in (".py", ".md"):
                continue
            text = path.read_text()
            blocks = [text] if path.suffix == ".py" else re.findall(r"```python\n(.*?)```", text, flags=re.S)
            package = ".".join(path.parent.relative_to(root).parts) if folder == "hookgnn" else ""
            offenders += [f"{name}: {use}" for block in blocks for use in uses_of_01_names(block, package)]
    assert offenders == [], offenders
