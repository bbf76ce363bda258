"""ASGI entry point for process managers: `uvicorn --factory torale.gateway.asgi:app_factory`."""

from __future__ import annotations

from fastapi import FastAPI

from torale.config import get_settings
from torale.gateway.app import create_app
from torale.runtime import resolve


def app_factory() -> FastAPI:
    settings = get_settings()
    runtime = resolve(settings)
    return create_app(settings, database_url=runtime.database_url, redis_url=runtime.redis_url)
