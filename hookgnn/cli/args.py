"""Command-line arguments: parsing them, and one ``hookgnn: error:`` line when one is bad.

argparse checks the syntax (``--steps abc``, ``--sizes a,b``, ``--sampler-arg oops``);
the subcommands of :mod:`hookgnn.cli` then check the values (mostly through
:class:`~hookgnn.training.config.TrainConfig`) and raise :class:`UsageError`, which
:func:`hookgnn.cli.main` prints as ``hookgnn: error: argument --OPTION VALUE: problem``
before exiting with status 2.
"""

from __future__ import annotations

import argparse
import ast
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from hookgnn.outpaths import OutputPathError

#: Sampler argument that takes the graph size, where it is not ``n``.
Job = Callable[[], None]
#: (name, add its arguments, check the parsed arguments and return the job to run).
Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], Job]]

SIZE_ARGS = {"multi_path": "k", "grid": "rows"}


class UsageError(Exception):
    """A bad command-line argument: ``main`` prints ``hookgnn: error: <message>`` and exits with 2."""


def bad_argument(option: str, value: Any, problem: str) -> UsageError:
    """The error for ``option`` given ``value``.

    >>> str(bad_argument("--sizes", (0, 4), "must be an integer >= 1"))
    'argument --sizes 0,4: must be an integer >= 1'
    """
    shown = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else value
    return UsageError(f"argument {option} {shown}: {problem}")


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``hookgnn: error: message`` (on one line) to stderr and exit with ``code``."""
    one_line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    print(f"hookgnn: error: {one_line}", file=sys.stderr)
    raise SystemExit(code)


class Parser(argparse.ArgumentParser):
    """argparse with one ``hookgnn: error:`` line for its own syntax errors too (no usage block: the line
    names the option and value, and points at ``--help``), and help texts computed when help is shown
    (an argument's ``lazy_help``, see :func:`lazy_help`), so that building the parser imports no torch."""

    def error(self, message: str) -> NoReturn:
        fail(f"{message} (see `{self.prog} --help`)")

    def format_help(self) -> str:
        for action in self._actions:
            make = getattr(action, "lazy_help", None)
            if make is not None:
                action.help = make()
        return super().format_help()


def lazy_help(action: argparse.Action, make: Callable[[], str]) -> argparse.Action:
    """Give ``action`` the help text ``make()``, computed only when ``--help`` is shown (by :class:`Parser`)."""
    action.lazy_help = make  # type: ignore[attr-defined]
    return action


class DeprecatedOption(argparse.Action):
    """An old spelling of an option: stores into the new option's ``dest`` and warns, with one
    ``hookgnn: warning:`` line on stderr, that ``new`` replaces it."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", **kwargs: Any) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        print(f"hookgnn: warning: {option_string} of `{parser.prog}` is deprecated: use {self.new} (same meaning); "
              "the old spelling is removed in hookgnn 0.3", file=sys.stderr)
        setattr(namespace, self.dest, values)


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``low``.

    >>> at_least(1)("3")
    3
    """
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def probability(text: str) -> float:
    """An argparse type: a number in [0, 1].

    >>> probability("0.3")
    0.3
    """
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a number in [0, 1], got {text!r}")
    return value


def add_threads_arg(parser: argparse.ArgumentParser) -> None:
    """``--threads N`` (an integer >= 1; default ``None``: chosen by workload, :mod:`hookgnn.ops.threads`)."""
    parser.add_argument("--threads", type=at_least(1), default=None,
                        help="torch CPU threads (default: chosen by workload: 1 for small graphs, where more threads "
                             "only wait on each other, torch's setting otherwise; see hookgnn.ops.threads)")


def int_list(text: str) -> tuple[int, ...]:
    """An argparse type: comma-separated integers (their range is checked later).

    >>> int_list("4,8")
    (4, 8)
    """
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expects comma-separated integers such as 4,8,16, got {text!r}") from None


def name_list(text: str) -> tuple[str, ...]:
    """An argparse type: comma-separated names.

    >>> name_list("pi,d")
    ('pi', 'd')
    """
    names = tuple(part.strip() for part in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"expects comma-separated names such as pi,d, got {text!r}")
    return names


def key_value(text: str) -> tuple[str, Any]:
    """An argparse type: ``KEY=VALUE``, the value read as a Python literal where it is one.

    >>> key_value("weights=(0.0, 5.0)"), key_value("mode=fast")
    (('weights', (0.0, 5.0)), ('mode', 'fast'))
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expects KEY=VALUE such as 'weights=(0.0, 5.0)', got {text!r}")
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value
    return key.strip(), parsed


def rounds(text: str) -> int | str:
    """An argparse type: ``hints``, ``nodes`` or a number of rounds >= 1.

    >>> rounds("hints"), rounds("12")
    ('hints', 12)
    """
    from hookgnn.training.validation import ConfigError, check_rounds

    try:
        return check_rounds(int(text) if text.lstrip("-").isdigit() else text)
    except ConfigError as err:
        raise argparse.ArgumentTypeError(f"{err.problem}, got {text!r}") from None


def sampler_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The sampler arguments of ``--sampler-arg`` and ``--p`` (erdos_renyi's ``p`` defaults to 0.5)."""
    kwargs = dict(args.sampler_arg)
    if args.p is not None:
        kwargs["p"] = args.p
    elif args.sampler == "erdos_renyi":
        kwargs.setdefault("p", 0.5)
    return kwargs


def sampler_error(err: Any, args: argparse.Namespace) -> UsageError:
    """A :class:`~hookgnn.training.validation.ConfigError` about the sampler or its arguments, as options."""
    if err.field == "sampler_kwargs" and err.key == "p" and args.p is not None:
        return bad_argument("--p", args.p, err.problem)
    if err.field == "sampler_kwargs" and err.key is not None:
        return bad_argument("--sampler-arg", f"{err.key}={err.value.get(err.key)!r}", err.problem)
    return bad_argument("--sampler", args.sampler, err.problem)


def checked_path(check: Callable[[str], Path], option: str, path: str) -> Path:
    """``check(path)`` (see :mod:`hookgnn.outpaths`), its error told as one for ``option``."""
    try:
        return check(path)
    except OutputPathError as err:
        raise bad_argument(option, path, str(err)) from None
