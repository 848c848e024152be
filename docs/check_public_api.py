"""Check that every public name of ``docs/api/index.md`` is documented as the site needs.

``make docs`` runs this before ``mkdocs build``. Each name listed in the tables of
``docs/api/index.md`` (above its "0.1 names" section) must have, as the API reference
renders it (loaded with Griffe, the library mkdocstrings uses, sphinx docstring style):

* **typed parameters**: an annotation on every parameter (and on a function's return; on
  a module-level constant, its own annotation);
* **a parameter list**: a ``:param name:`` entry for every parameter of the signature
  (a class: of its ``__init__``, whose docstring the site merges into the class's);
* **an example**: a doctest (``>>>``) in its docstring.

A bare name (or a member, ``Task.clrs_names``) is looked up in the modules that its
section's heading names in backquotes (``hookgnn.patching`` ...; ``import hookgnn`` means
``hookgnn``), then in hookgnn's subpackages; a full name (``hookgnn.training.train``)
where it says. The script prints one line per problem, naming
the public name and what it lacks, and exits 1 if there is any::

    python docs/check_public_api.py            # from the repository root
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import griffe

ROOT = Path(__file__).resolve().parents[1]
INDEX = ROOT / "docs" / "api" / "index.md"
_STOP = "## 0.1 names"  # the deprecated spellings: documented by their 0.2 names
_SKIP_PARAMS = {"self", "cls"}


@dataclass(frozen=True)
class PublicName:
    """A name of the API index, with the modules its section says it comes from."""

    name: str
    modules: tuple[str, ...]


def public_names(index: Path = INDEX) -> list[PublicName]:
    """The names in the first column of every table of ``index`` above "0.1 names"."""
    names, modules = [], ("hookgnn",)
    for line in index.read_text().split(_STOP)[0].splitlines():
        if line.startswith("#"):
            found = re.findall(r"`(?:import )?(hookgnn(?:\.\w+)*)`", line)
            modules = tuple(found) + (("hookgnn",) if "hookgnn" not in found else ())
            continue
        cell = re.match(r"\|\s*`([\w.]+)`\s*\|", line)
        if cell:
            names.append(PublicName(cell.group(1), modules))
    return names


def _load() -> griffe.Object:
    sys.path.insert(0, str(ROOT / "docs"))
    from rst_docstrings import RstDocstrings  # the same rewrite the site applies

    extensions = griffe.load_extensions(RstDocstrings, "dataclasses")
    return griffe.load("hookgnn", search_paths=[str(ROOT)], extensions=extensions,
                       docstring_parser="sphinx", resolve_aliases=True)


def _find(package: griffe.Object, entry: PublicName) -> griffe.Object | None:
    if entry.name.startswith("hookgnn."):
        candidates = [entry.name]
    else:  # a bare name, or a member such as ``Task.clrs_names``: in the section's modules, then any subpackage
        subpackages = [f"hookgnn.{m.name}" for m in package.modules.values()]
        candidates = [f"{m}.{entry.name}" for m in (*entry.modules, *subpackages)]
    for path in candidates:
        try:
            obj = package[path.removeprefix("hookgnn").lstrip(".")]
            obj = obj.final_target if obj.is_alias else obj
        except (KeyError, griffe.AliasResolutionError, griffe.CyclicAliasError):
            continue
        leaf = entry.name.rsplit(".", 1)[-1]
        if obj.is_module and leaf in obj.members:  # a function that shadows its own submodule
            obj = obj.members[leaf]
            obj = obj.final_target if obj.is_alias else obj
        return obj
    return None


def _documented(docstring: griffe.Docstring | None) -> set[str]:
    if docstring is None:
        return set()
    return {p.name.lstrip("*") for section in docstring.parsed
            if section.kind is griffe.DocstringSectionKind.parameters for p in section.value}


def _init(cls: griffe.Object) -> griffe.Object | None:
    """The ``__init__`` a class gets (its own, a dataclass's or an inherited one), if Griffe knows it."""
    try:
        init = cls.all_members.get("__init__")
        return None if init is None else (init.final_target if init.is_alias else init)
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def problems(obj: griffe.Object, name: str) -> list[str]:
    """What ``obj`` (the public ``name``) lacks: one sentence per missing piece."""
    out: list[str] = []
    docstrings = [obj.docstring]
    if obj.is_attribute:
        if obj.annotation is None:
            out.append(f"{name}: no type annotation")
        params = []
    else:
        function = obj
        if obj.is_class:  # the site merges __init__ (own or inherited) into the class
            function = _init(obj)
            if function is not None:
                docstrings.append(function.docstring)
        params = [] if function is None else [p for p in function.parameters if p.name not in _SKIP_PARAMS]
        untyped = [p.name for p in params if p.annotation is None]
        if untyped:
            out.append(f"{name}: parameters without a type annotation: {', '.join(untyped)}")
        if obj.is_function and obj.returns is None:
            out.append(f"{name}: no return annotation")
    listed = set().union(*(_documented(d) for d in docstrings))
    missing = [p.name for p in params if p.name not in listed]
    if missing:
        out.append(f"{name}: parameters missing from the docstring's parameter list (:param name:): "
                   f"{', '.join(missing)}")
    if not any(d is not None and (">>>" in d.value or "```pycon" in d.value) for d in docstrings):
        out.append(f"{name}: no example (a >>> doctest in its docstring)")
    return out


def main() -> int:
    """Check every public name; print the problems; 0 when there are none."""
    names = public_names(INDEX)
    if not names:
        print(f"no public names found in {INDEX}", file=sys.stderr)
        return 1
    package = _load()
    found: list[str] = []
    for entry in names:
        obj = _find(package, entry)
        if obj is None:
            found.append(f"{entry.name}: not found in {', '.join(entry.modules)} (docs/api/index.md lists it)")
            continue
        found += problems(obj, entry.name)
    for line in found:
        print(line, file=sys.stderr)
    print(f"{len(names)} public names checked: {len(found)} problem(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
