"""The package version, in one place (run directories record it)."""

__version__ = "0.1.0"
