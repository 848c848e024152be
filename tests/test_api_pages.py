"""The API reference pages (docs/api/*.md, in the mkdocs nav) document the modules that define the public names."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "docs" / "api"


def documented_modules() -> set[str]:
    """The modules rendered by a ``::: module`` line of an API page that the site's nav lists."""
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = [p for p in API.glob("*.md") if f"api/{p.name}" in nav]
    return {m for p in pages for m in re.findall(r"^::: (hookgnn[\w.]*)\s*$", p.read_text(), re.M)}


@pytest.mark.parametrize("package", ["hookgnn.circuits", "hookgnn.groundtruth"])
def test_every_public_class_and_function_is_on_an_api_page(package: str):
    pkg = importlib.import_module(package)
    documented = documented_modules()
    assert package in documented
    missing = {name: obj.__module__ for name in pkg.__all__
               if (inspect.isclass(obj := getattr(pkg, name)) or inspect.isfunction(obj))
               and obj.__module__ not in documented}
    assert missing == {}, f"defined in modules no docs/api page renders: {missing}"


def test_the_discovery_api_is_rendered_where_it_is_defined():
    from hookgnn.circuits import Discovered, acdc, learn_mask, redundancy

    documented = documented_modules()
    for obj in (acdc, learn_mask, redundancy, Discovered):
        assert obj.__module__ in documented, obj.__name__
