"""Torale: natural-language web monitoring."""

__version__ = "0.1.0"
