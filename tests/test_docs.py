"""The docs site's machinery: the public-name check, the reST-to-Markdown rewrite, the hooks
that swap in executed tutorials and keep the site offline.

The full ``mkdocs build --strict`` is ``make docs`` (CI); these tests are the cheap parts,
each against hand-written expectations. They need the ``docs`` extra (griffe, mkdocs) and
skip without it (``make test`` runs before CI installs it; ``make docs`` runs the check).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docs_{name}", DOCS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def check() -> ModuleType:
    pytest.importorskip("griffe")
    return _load("check_public_api")


@pytest.fixture(scope="module")
def rst() -> ModuleType:
    pytest.importorskip("griffe")
    return _load("rst_docstrings")


@pytest.fixture(scope="module")
def hooks() -> ModuleType:
    pytest.importorskip("mkdocs")
    return _load("hooks")


# -- the public-name check ------------------------------------------------------------------


def test_every_public_name_of_the_api_index_has_typed_parameters_a_parameter_list_and_an_example(
        check: ModuleType) -> None:
    package = check._load()
    names = check.public_names()
    assert len(names) >= 40  # the index lists the whole public surface
    found = []
    for entry in names:
        obj = check._find(package, entry)
        found += [f"{entry.name}: not found"] if obj is None else check.problems(obj, entry.name)
    assert found == []


def test_public_names_come_from_the_tables_above_the_0_1_section_with_their_modules(
        check: ModuleType, tmp_path: Path) -> None:
    index = tmp_path / "index.md"
    index.write_text(textwrap.dedent("""\
        # The public API

        ## Graphs (`import hookgnn`)

        | name | what it is |
        |---|---|
        | `Graph` | a batch |

        ## Circuits (`hookgnn.circuits`; `Component` from `hookgnn.patching`)

        | name | what it is |
        |---|---|
        | `select` | keys |
        | `hookgnn.training.train` | train |

        ## 0.1 names

        | 0.1 | 0.2 |
        |---|---|
        | `top_n(scores, n)` | `select(scores, n=n)` |
        """))
    got = [(p.name, p.modules) for p in check.public_names(index)]
    assert got == [("Graph", ("hookgnn",)),
                   ("select", ("hookgnn.circuits", "hookgnn.patching", "hookgnn")),
                   ("hookgnn.training.train", ("hookgnn.circuits", "hookgnn.patching", "hookgnn"))]


def test_the_check_names_each_public_name_and_what_it_lacks(check: ModuleType, tmp_path: Path) -> None:
    import griffe

    package = tmp_path / "toy"
    package.mkdir()
    (package / "__init__.py").write_text(textwrap.dedent('''\
        from dataclasses import dataclass

        def untyped(a, b: int):
            """No annotation on ``a`` nor on the return, ``b`` not listed, no example."""

        def complete(a: int, *, b: str = "x") -> int:
            """Fine.

            >>> complete(1)
            1

            :param a: the a.
            :param b: the b.
            """
            return a

        @dataclass
        class Point:
            """A point, whose ``y`` is not listed.

            >>> Point(1.0, 2.0).x
            1.0

            :param x: the x.
            """

            x: float
            y: float

        LIMIT = 3
        """A constant without an annotation nor an example."""
        '''))
    loaded = griffe.load("toy", search_paths=[str(tmp_path)], docstring_parser="sphinx")
    assert check.problems(loaded["complete"], "complete") == []
    assert check.problems(loaded["untyped"], "untyped") == [
        "untyped: parameters without a type annotation: a",
        "untyped: no return annotation",
        "untyped: parameters missing from the docstring's parameter list (:param name:): a, b",
        "untyped: no example (a >>> doctest in its docstring)",
    ]
    assert check.problems(loaded["Point"], "Point") == [
        "Point: parameters missing from the docstring's parameter list (:param name:): y"]
    assert check.problems(loaded["LIMIT"], "LIMIT") == [
        "LIMIT: no type annotation", "LIMIT: no example (a >>> doctest in its docstring)"]


def test_the_check_script_exits_1_and_names_a_name_it_cannot_find(check: ModuleType, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    index = tmp_path / "index.md"
    index.write_text("## Models (`import hookgnn`)\n\n| name | what |\n|---|---|\n| `NoSuchModel` | none |\n")
    monkeypatch.setattr(check, "INDEX", index)
    assert check.main() == 1
    assert "NoSuchModel: not found in hookgnn" in capsys.readouterr().err


# -- reStructuredText to Markdown ------------------------------------------------------------


def test_a_simple_table_with_a_header_and_continued_rows_becomes_a_markdown_table(rst: ModuleType) -> None:
    doc = textwrap.dedent("""\
        Intro with ``code``.

        ======  =========  ==========================
        type    item       loss
        ======  =========  ==========================
        scalar  node/edge  :math:`(p - y)^2`
                graph
        a|b     same       see :func:`~hookgnn.x.f`
        ======  =========  ==========================

        After.""")
    assert rst.convert(doc).splitlines() == [
        "Intro with `code`.",
        "",
        "",
        "| type | item | loss |",
        "|---|---|---|",
        "| scalar | node/edge graph | $(p - y)^2$ |",
        "| a\\|b | same | see `f` |",
        "",
        "",
        "After.",
    ]


def test_a_simple_table_without_a_header_uses_its_first_row(rst: ModuleType) -> None:
    doc = "  ===  ===\n  a    b\n  c    d\n  ===  ===\n"
    assert rst.convert(doc).splitlines() == ["", "  | a | b |", "  |---|---|", "  | c | d |"]


def test_doctests_become_pycon_blocks_and_math_becomes_dollars(rst: ModuleType) -> None:
    doc = "Sum :math:`x_i`.\n\n>>> x[0][1]\n2\n\n.. math:: a = b\n"
    assert rst.convert(doc).splitlines() == [
        "Sum $x_i$.", "", "```pycon", ">>> x[0][1]", "2", "```", "", "$$", "a = b", "$$"]


# -- the mkdocs hooks ------------------------------------------------------------------------


def _tutorial_files(tmp_path: Path) -> tuple[object, Path]:
    from mkdocs.structure.files import File, Files

    docs = tmp_path / "docs"
    (docs / "tutorials").mkdir(parents=True)
    script = docs / "tutorials" / "01_toy.py"
    script.write_text("# %% [markdown]\n# # 1. Toy\n")
    files = Files([File("tutorials/01_toy.py", str(docs), str(tmp_path / "site"), False),
                   File("index.md", str(docs), str(tmp_path / "site"), False)])
    return files, script


def test_a_tutorial_page_is_rendered_from_its_executed_notebook(hooks: ModuleType, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    files, script = _tutorial_files(tmp_path)
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    notebook = notebooks / "01_toy.ipynb"
    notebook.write_text("{}")
    os.utime(script, (1_000_000, 1_000_000))  # the notebook is newer than its script
    monkeypatch.setattr(hooks, "NOTEBOOKS", notebooks)
    hooks.on_files(files, config=None)
    assert files.get_file_from_path("tutorials/01_toy.py").abs_src_path == str(notebook)
    assert files.get_file_from_path("index.md").abs_src_path == str(tmp_path / "docs" / "index.md")


def test_a_stale_notebook_warns_and_a_missing_one_leaves_the_source(hooks: ModuleType, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    files, script = _tutorial_files(tmp_path)
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    monkeypatch.setattr(hooks, "NOTEBOOKS", notebooks)
    with caplog.at_level(logging.INFO, logger="mkdocs.hooks.tutorials"):
        hooks.on_files(files, config=None)
    assert files.get_file_from_path("tutorials/01_toy.py").abs_src_path == str(script)
    assert "no executed notebook" in caplog.text and "make tutorials" in caplog.text

    files, script = _tutorial_files(tmp_path / "again")
    stale = notebooks / "01_toy.ipynb"
    stale.write_text("{}")
    os.utime(stale, (1_000_000, 1_000_000))  # older than the script
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mkdocs.hooks.tutorials"):
        hooks.on_files(files, config=None)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "older than" in caplog.text and str(script) in caplog.text


class _Page:
    class file:  # noqa: N801 - a stand-in for mkdocs' Page.file
        src_uri = "tutorials/01_toy.py"


def test_built_pages_load_nothing_from_the_network(hooks: ModuleType, caplog: pytest.LogCaptureFixture) -> None:
    mermaid = ('<script type="module">\n  document.addEventListener("DOMContentLoaded", async () => {\n'
               '    const mermaid = (await import("https://cdn.example/mermaid.esm.min.mjs")).default;\n'
               '  });\n</script>')
    page = f'<p>x</p><script src=""> </script>{mermaid}<script src="../js/local.js"></script>'
    with caplog.at_level(logging.WARNING, logger="mkdocs.hooks.tutorials"):
        out = hooks.on_post_page(page, page=_Page, config=None)
    assert out == '<p>x</p><script src="../js/local.js"></script>'
    assert caplog.records == []

    remote = ('<script src="https://cdn.example/mathjax.js"></script>'
              '<link rel="stylesheet" href="https://fonts.example/css">')
    with caplog.at_level(logging.WARNING, logger="mkdocs.hooks.tutorials"):
        hooks.on_post_page(remote, page=_Page, config=None)
    assert len(caplog.records) == 2
    assert "https://cdn.example/mathjax.js" in caplog.text and "https://fonts.example/css" in caplog.text
    assert "tutorials/01_toy.py" in caplog.text


def test_the_site_configuration_loads_local_scripts_only() -> None:
    yaml = pytest.importorskip("yaml")

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: None)
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)
    assert config["theme"]["font"] is False  # no Google Fonts
    scripts = config["extra_javascript"]
    assert scripts and all(not s.startswith(("http://", "https://")) for s in scripts)
    for script in scripts:
        assert (DOCS / script).stat().st_size > 0, script
    fonts = DOCS / "javascripts" / "mathjax" / "output" / "chtml" / "fonts" / "woff-v2"
    assert len(list(fonts.glob("*.woff"))) > 10


def test_the_site_check_finds_a_tutorial_without_figures_and_a_remote_script(tmp_path: Path) -> None:
    site_check = _load("check_site")
    good = tmp_path / "tutorials" / "01_toy" / "index.html"
    bare = tmp_path / "tutorials" / "02_toy" / "index.html"
    remote = tmp_path / "api" / "index.html"
    for page in (good, bare, remote):
        page.parent.mkdir(parents=True)
    style = "<style>.jp-OutputArea-output { } .x { background: url(data:image/png;base64,AAAA) }</style>"
    good.write_text(style + '<div class="jp-OutputArea-output"><img alt="" src="data:image/png;base64,AAAA"></div>')
    bare.write_text(style + '<div class="jp-OutputArea-output"><pre>text only</pre></div>')
    remote.write_text('<script src="https://cdn.example/tex.js"></script>')
    assert site_check.static_problems(tmp_path) == [
        "tutorials/02_toy/index.html: no outputs or no figure (run `make tutorials` before the build)",
        "api/index.html: loads a script or stylesheet from the network",
    ]
