"""The 0.1 module paths and names keep working until 0.3: each warns, naming the new place,
and gives the very object that lives there now. The library, tests, tutorials, benchmarks
and docs use none of them."""

import importlib
import re
import sys
from pathlib import Path

import pytest

import hookgnn
import hookgnn.patching

ROOT = Path(__file__).resolve().parents[1]
#: These tests call the 0.1 names on purpose: their warnings are checked here, not turned into errors
#: by the suite-wide filter in pyproject.toml (pytest.warns re-emits the ones it does not match).
pytestmark = pytest.mark.filterwarnings("default::DeprecationWarning")

#: 0.1 module path -> 0.2 module (written out here, not read from hookgnn._moved).
MODULES_01 = {
    "hookgnn.disk": "hookgnn.cache.disk",
    "hookgnn.grad_taps": "hookgnn.cache.grad_taps",
    "hookgnn.cli_args": "hookgnn.cli.args",
    "hookgnn.demo": "hookgnn.cli.demo",
    "hookgnn.tour": "hookgnn.cli.tour",
    "hookgnn.metamers.job": "hookgnn.cli.metamer",
    "hookgnn.training.metrics": "hookgnn.metrics.features",
    "hookgnn.patching.metrics": "hookgnn.metrics.per_graph",
    "hookgnn.patching.targets": "hookgnn.metrics.targets",
    "hookgnn.patching.attribution": "hookgnn.attribution.gradients",
    "hookgnn.patching.streamed": "hookgnn.attribution.streamed",
    "hookgnn.patching.atp_star": "hookgnn.attribution.atp_star",
    "hookgnn.patching.local": "hookgnn.attribution.local",
    "hookgnn.patching.circuits": "hookgnn.circuits.circuit",
    "hookgnn.patching.verify": "hookgnn.circuits.verify",
}

#: hookgnn.patching.__all__ in 0.1.
PATCHING_ALL_01 = [
    "Attribution", "Audit", "Circuit", "Component", "DEFAULT_DIRECTION", "DistanceMSE", "EdgeScores",
    "HookScores", "Link", "MaskAccuracy", "MessageEdge", "OutputSum", "PointerAccuracy", "PointerKL",
    "PointerLogProb", "Verified", "WeightEdge", "above", "activation_sweep", "atp_star", "attribution_patch",
    "audit", "check_same_direction", "eap", "evaluate", "faithfulness", "faithfulness_curve",
    "greedy_from_outputs", "integrated_gradients", "integrated_gradients_at", "jaccard", "links_of",
    "message_edge_scores", "message_edges", "message_patch", "message_sweep", "patch_each", "path_patch",
    "prune", "register_links", "round_hooks", "spearman", "top_n", "verify_top", "weighted_jaccard",
]
#: Where each moved name of hookgnn.patching lives in 0.2.
PATCHING_MOVED = {
    **dict.fromkeys(["atp_star", "attribution_patch", "eap", "integrated_gradients", "integrated_gradients_at",
                     "message_edge_scores"], "hookgnn.attribution"),
    **dict.fromkeys(["Audit", "Circuit", "Verified", "above", "audit", "evaluate", "faithfulness_curve",
                     "greedy_from_outputs", "jaccard", "prune", "spearman", "top_n", "verify_top",
                     "weighted_jaccard"], "hookgnn.circuits"),
    **dict.fromkeys(["DistanceMSE", "MaskAccuracy", "OutputSum", "PointerAccuracy", "PointerKL", "PointerLogProb",
                     "faithfulness"], "hookgnn.metrics"),
    **dict.fromkeys(["Link", "links_of", "register_links"], "hookgnn.nn.wiring"),
}
#: Names that left a module that stays: (module, name) -> new module.
NAMES_MOVED = {
    ("hookgnn.patching.components", "Link"): "hookgnn.nn.wiring",
    ("hookgnn.patching.components", "LINKS"): "hookgnn.nn.wiring",
    ("hookgnn.patching.components", "links_of"): "hookgnn.nn.wiring",
    ("hookgnn.patching.components", "processor_links"): "hookgnn.nn.wiring",
    ("hookgnn.patching.components", "register_links"): "hookgnn.nn.wiring",
    ("hookgnn.patching.components", "act_fn"): "hookgnn.nn.wiring",
    ("hookgnn.hooks", "relative_hook_name"): "hookgnn.names",
    ("hookgnn.cache", "act_name"): "hookgnn.names",
}


def _fresh_import(old: str):
    """Import ``old`` as a first import would (a module already imported does not warn again)."""
    sys.modules.pop(old, None)
    parent, _, child = old.rpartition(".")
    vars(sys.modules[parent]).pop(child, None) if parent in sys.modules else None
    return importlib.import_module(old)


@pytest.mark.parametrize("old", sorted(MODULES_01))
def test_01_module_path_warns_and_is_the_new_module(old):
    new = MODULES_01[old]
    with pytest.warns(DeprecationWarning, match=rf"^{re.escape(old)} moved to {re.escape(new)};"):
        module = _fresh_import(old)
    assert module is importlib.import_module(new)


@pytest.mark.parametrize("name", PATCHING_ALL_01)
def test_01_patching_name_still_imports(name, recwarn):
    got = getattr(hookgnn.patching, name)
    new = PATCHING_MOVED.get(name)
    moved = [w for w in recwarn.list if issubclass(w.category, DeprecationWarning)]
    if new is None:
        assert moved == [] and name in hookgnn.patching.__all__
        return
    assert len(moved) == 1
    assert str(moved[0].message).startswith(f"hookgnn.patching.{name} moved to {new}.{name} ")
    assert got is getattr(importlib.import_module(new), name)
    assert name not in hookgnn.patching.__all__


def test_01_from_import_of_every_patching_name():
    namespace: dict = {}
    with pytest.warns(DeprecationWarning):
        exec(f"from hookgnn.patching import {', '.join(PATCHING_ALL_01)}", namespace)
    assert all(name in namespace for name in PATCHING_ALL_01)


def test_patching_atp_star_is_the_function_even_after_its_old_module_path_is_imported():
    with pytest.warns(DeprecationWarning):
        _fresh_import("hookgnn.patching.atp_star")
    with pytest.warns(DeprecationWarning, match="hookgnn.patching.atp_star moved to hookgnn.attribution.atp_star"):
        from hookgnn.patching import atp_star
    import hookgnn.attribution

    assert atp_star is hookgnn.attribution.atp_star and callable(atp_star)


@pytest.mark.parametrize(("module", "name"), sorted(NAMES_MOVED))
def test_01_name_of_a_module_that_stays_warns_and_is_the_new_object(module, name):
    new = NAMES_MOVED[(module, name)]
    with pytest.warns(DeprecationWarning, match=rf"^{re.escape(module)}\.{name} moved to {re.escape(new)}\.{name} "):
        got = getattr(importlib.import_module(module), name)
    assert got is getattr(importlib.import_module(new), name)


def test_unknown_names_still_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        hookgnn.patching.no_such_name  # noqa: B018
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("hookgnn.patching.no_such_module")


OLD_PATH = re.compile(r"hookgnn\.(" + "|".join(re.escape(m[len("hookgnn."):]) for m in MODULES_01) + r")\b")
#: ``from hookgnn.patching import a, b`` on one line, or ``(...)`` over several (comments dropped below).
OLD_NAME = re.compile(r"from hookgnn\.patching import (?:\(([^)]*)\)|([^\n(]*))")
OLD_DOTTED = re.compile(r"(?<![\w.])(?:hookgnn\.)?patching\.(" + "|".join(sorted(PATCHING_MOVED, key=len, reverse=True))
                        + r")\b")


def test_the_repository_uses_no_01_path():
    offenders = []
    for folder in ("hookgnn", "tests", "tutorials", "benchmarks", "docs"):
        for path in (ROOT / folder).rglob("*"):
            if path.suffix not in (".py", ".md") or path.name in ("_moved.py", "test_aliases.py", Path(__file__).name):
                continue
            text = path.read_text()
            offenders += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in OLD_PATH.finditer(text)]
            offenders += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in OLD_DOTTED.finditer(text)]
            for m in OLD_NAME.finditer(text):
                listed = re.sub(r"#[^\n]*", "", m.group(1) or m.group(2))
                names = {n.strip().split(" as ")[0] for n in listed.replace("\n", " ").split(",")}
                offenders += [f"{path.relative_to(ROOT)}: hookgnn.patching.{n}" for n in names & set(PATCHING_MOVED)]
    for line in (ROOT / "mkdocs.yml").read_text().splitlines():
        offenders += [f"mkdocs.yml: {m.group(0)}" for m in OLD_PATH.finditer(line)]
    assert offenders == [], offenders
