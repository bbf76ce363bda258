"""ASGI entry point: `uvicorn --factory torale.discovery.asgi:app_factory` (stateless; scale freely)."""

from __future__ import annotations

from fastapi import FastAPI

from torale.config import get_settings
from torale.discovery.app import create_app


def app_factory() -> FastAPI:
    settings = get_settings()
    return create_app(settings, redis_url=settings.redis_url)
