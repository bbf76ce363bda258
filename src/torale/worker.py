"""The Celery app as workers and beat load it (`celery -A torale.worker` works too)."""

from __future__ import annotations

from torale.config import get_settings
from torale.queue import create_celery

celery_app = create_celery(get_settings())
