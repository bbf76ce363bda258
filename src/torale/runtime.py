"""Where the database and Redis are: configured URLs, or those of a running `torale up`."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from torale.config import Settings


class NotRunningError(RuntimeError):
    """No URL is configured and no `torale up` is running on the data dir."""


@dataclass(frozen=True)
class Runtime:
    database_url: str
    redis_url: str
    pid: int = 0


def runtime_file(settings: Settings) -> Path:
    return settings.data_dir.resolve() / "runtime.json"


def write_runtime(settings: Settings, runtime: Runtime) -> None:
    path = runtime_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(runtime)))
    tmp.chmod(0o600)
    tmp.replace(path)


def clear_runtime(settings: Settings) -> None:
    runtime_file(settings).unlink(missing_ok=True)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def resolve(settings: Settings) -> Runtime:
    """Configured URLs win; otherwise read those a running `torale up` published."""
    database_url, redis_url = settings.database_url, settings.redis_url
    if database_url and redis_url:
        return Runtime(database_url, redis_url)
    path = runtime_file(settings)
    if path.exists():
        published = Runtime(**json.loads(path.read_text()))
        if _running(published.pid):
            return Runtime(
                database_url or published.database_url,
                redis_url or published.redis_url,
                published.pid,
            )
    missing = [
        name
        for name, value in (("TORALE_DATABASE_URL", database_url), ("TORALE_REDIS_URL", redis_url))
        if not value
    ]
    raise NotRunningError(
        f"{' and '.join(missing)} not set and no `torale up` is running on "
        f"{settings.data_dir.resolve()}: start `torale up` first, or set them"
    )
