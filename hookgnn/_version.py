"""The package version, importable without torch (``hookgnn --version``)."""

__version__ = "0.1.0"
