"""The single source of swsync's version number."""

__version__ = "0.1.0"
