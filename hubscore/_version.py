"""The package version: one place, imported by every module that stamps outputs."""

__version__ = "0.1.0"
