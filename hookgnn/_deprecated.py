"""Deprecated 0.1 names: aliases that warn once per call with the 0.2 spelling, for one release.

Every alias returns exactly what its new spelling returns (it calls it), so moving to the
new name never changes a number. The CHANGELOG's migration table lists them all.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def warn_deprecated(old_name: str, new_spelling: str, stacklevel: int = 3) -> None:
    """Warn (``DeprecationWarning``) that ``old_name`` is deprecated in favour of ``new_spelling``.

    ``stacklevel=3`` points at the caller of the function that calls this one.

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as got:
    ...     warnings.simplefilter("always")
    ...     warn_deprecated("top_n", "select(scores, n=...)", stacklevel=2)
    >>> str(got[0].message)
    'top_n is deprecated since hookgnn 0.2 and will be removed in 0.3; use select(scores, n=...)'
    """
    warnings.warn(f"{old_name} is deprecated since hookgnn 0.2 and will be removed in 0.3; use {new_spelling}",
                  DeprecationWarning, stacklevel=stacklevel)


def deprecated_alias(old_name: str, new: F, new_spelling: str) -> F:
    """``new`` under its 0.1 name ``old_name``: same signature and results, warns on every call.

    For a pure rename (same arguments); aliases whose arguments moved are written out by
    hand and call :func:`warn_deprecated`.

    >>> import warnings
    >>> def select(x): return x
    >>> top = deprecated_alias("top", select, "select(x)")
    >>> with warnings.catch_warnings(record=True) as got:
    ...     warnings.simplefilter("always")
    ...     top(3)
    3
    >>> got[0].category.__name__, top.__name__
    ('DeprecationWarning', 'top')
    """

    @functools.wraps(new)
    def alias(*args: Any, **kwargs: Any) -> Any:
        warn_deprecated(old_name, new_spelling)
        return new(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old_name.rsplit(".", 1)[-1]
    alias.__doc__ = f"Deprecated alias of :func:`{new.__module__}.{new.__name__}` (use ``{new_spelling}``)."
    return alias  # type: ignore[return-value]


def deprecated_names(module: str, renamed: dict[str, tuple[Callable[[], Any], str]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) that hands out renamed classes under their old names, warning.

    ``renamed[old] = (loader of the new object, new spelling)``; other names raise ``AttributeError``.

    >>> import warnings
    >>> getattr_ = deprecated_names("m", {"Old": (lambda: int, "m.New")})
    >>> with warnings.catch_warnings(record=True):
    ...     warnings.simplefilter("always")
    ...     getattr_("Old")
    <class 'int'>
    """

    def __getattr__(name: str) -> Any:
        if name in renamed:
            load, spelling = renamed[name]
            warn_deprecated(f"{module}.{name}", spelling)
            return load()
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
