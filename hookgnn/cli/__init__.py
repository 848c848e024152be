"""The ``hookgnn`` command line (``hookgnn --help``; console script ``hookgnn = hookgnn.cli:main``).

* :mod:`~hookgnn.cli.main`: the subcommands and :func:`main`;
* :mod:`~hookgnn.cli.train`: ``hookgnn train`` and ``hookgnn eval``;
* :mod:`~hookgnn.cli.args`: argument types and the one-line usage errors;
* :mod:`~hookgnn.cli.demo`, :mod:`~hookgnn.cli.tour`, :mod:`~hookgnn.cli.metamer`: the jobs
  behind ``hookgnn demo``, ``hookgnn tour`` and ``hookgnn metamer``.
"""

from hookgnn.cli.main import commands, main

__all__ = ["commands", "main"]
