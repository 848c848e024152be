"""The package version, importable without torch (``hookgnn --version``)."""

__version__ = "0.2.0.dev0"
