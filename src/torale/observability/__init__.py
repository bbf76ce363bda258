"""Logs, metrics and traces shared by every service."""

from torale.observability.logging import configure_logging

__all__ = ["configure_logging"]
