"""The `torale` command line: run the whole system, one service, or the database tools."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer

from torale import __version__
from torale.config import Settings, SettingsError, load_settings

app = typer.Typer(help="Torale: natural-language web monitoring.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations and connection details.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def _settings() -> Settings:
    try:
        settings = load_settings()
    except SettingsError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    from torale.observability import configure_logging

    configure_logging(settings.log_level, json=settings.log_json)
    return settings


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(1)


@app.command()
def version() -> None:
    """Print Torale's version."""
    typer.echo(f"torale {__version__}")


# ------------------------------------------------------------------------- db


def _database_url(settings: Settings) -> str:
    from torale.runtime import NotRunningError, resolve

    if settings.database_url:
        return settings.database_url
    try:
        return resolve(settings.model_copy(update={"redis_url": "redis://unused"})).database_url
    except NotRunningError as exc:
        raise _fail(str(exc)) from None


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending migrations (each in a transaction); a second run changes nothing."""
    from torale.db.migrate import MigrationError, migrate

    settings = _settings()
    try:
        applied = migrate(_database_url(settings))
    except MigrationError as exc:
        raise _fail(str(exc)) from None
    for migration in applied:
        typer.echo(f"applied {migration.version}_{migration.name}")
    typer.echo(f"{len(applied)} migration(s) applied; database is up to date")


@db_app.command("status")
def db_status() -> None:
    """List applied and pending migrations."""
    from torale.db.migrate import status

    applied, pending = status(_database_url(_settings()))
    for migration in applied:
        typer.echo(f"applied  {migration.version}_{migration.name}")
    for migration in pending:
        typer.echo(f"pending  {migration.version}_{migration.name}")
    typer.echo(f"{len(applied)} applied, {len(pending)} pending")


@db_app.command("url")
def db_url() -> None:
    """Print the connection URL of the database in use (on the last line)."""
    from torale.db.migrate import sync_url

    typer.echo(sync_url(_database_url(_settings())))


# ------------------------------------------------------------------------- services


def _runtime_env(settings: Settings) -> None:
    """Export the resolved URLs so that libraries reading settings see the running servers."""
    from torale.runtime import NotRunningError, resolve

    try:
        runtime = resolve(settings)
    except NotRunningError as exc:
        raise _fail(str(exc)) from None
    os.environ["TORALE_DATABASE_URL"] = runtime.database_url
    os.environ["TORALE_REDIS_URL"] = runtime.redis_url
    from torale.config import get_settings

    get_settings.cache_clear()


@app.command()
def worker(
    queues: Annotated[
        str, typer.Option(help="Comma-separated queues to consume.")
    ] = "fetch,embed,detect,notify,scheduler",
    concurrency: Annotated[
        int, typer.Option(help="Messages run at once: threads of one process, or processes.")
    ] = 2,
    pool: Annotated[
        str,
        typer.Option(
            help="threads: each process runs --concurrency threads, each running a message's "
            "checks concurrently on its own event loop; prefork: Celery's process per slot."
        ),
    ] = "threads",
    processes: Annotated[
        int,
        typer.Option(
            min=0,
            help="Threaded worker processes, forked after loading code and model once so they "
            "share those pages; one process uses ~1.3 cores. 0: one per CPU it may use (affinity, "
            "cgroup quota), up to 4.",
        ),
    ] = 0,
) -> None:
    """Run a Celery worker for the given queues."""
    if pool not in ("threads", "prefork", "solo"):
        raise _fail(f"--pool must be threads, prefork or solo, not {pool!r}")
    if processes and pool != "threads":
        raise _fail("--processes needs --pool threads (prefork makes its own processes)")
    settings = _settings()
    _runtime_env(settings)
    # one BLAS thread per process: the processes already use every core, and idle BLAS threads
    # spinning in each one cost several times the work itself (measured: bench/throughput.py)
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    from torale import worker_processes

    worker_processes.compact_malloc()

    if pool == "threads":
        processes = processes or worker_processes.default_processes()
    if pool == "prefork" or processes > 1:
        # load code and model before forking: their pages are then shared (copy-on-write)
        worker_processes.preload(settings)
    if pool == "prefork":  # Celery forks later, when it starts the pool
        from celery.signals import worker_before_create_process

        worker_before_create_process.connect(lambda **_: worker_processes.freeze(), weak=False)
    from torale.worker import celery_app

    group = os.getpid()

    def run(index: int) -> int | None:
        argv = ["worker", "--queues", queues, "--pool", pool, "--concurrency", str(concurrency)]
        argv += ["--loglevel", settings.log_level, "--without-gossip", "--without-mingle"]
        if processes > 1:
            argv += ["--hostname", f"worker{group}.{index}@%h"]
        code: int | None = celery_app.start(argv)  # worker_main drops the exit code
        return code

    code = worker_processes.run_processes(max(processes, 1), run)
    if code:
        raise typer.Exit(code)


@app.command()
def beat() -> None:
    """Run the scheduler (Celery beat): dispatches due checks and sweeps stuck work."""
    settings = _settings()
    _runtime_env(settings)
    from torale.worker import celery_app

    schedule = settings.data_dir.resolve() / "celerybeat-schedule"
    schedule.parent.mkdir(parents=True, exist_ok=True)
    celery_app.Beat(schedule=str(schedule), loglevel=settings.log_level).run()


SERVICES = {
    "gateway": ("torale.gateway.asgi:app_factory", "gateway_port"),
    "discovery": ("torale.discovery.asgi:app_factory", "discovery_port"),
}


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help="gateway or discovery")],
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
    workers: Annotated[int, typer.Option(help="Worker processes.")] = 1,
) -> None:
    """Run one HTTP service alone."""
    import uvicorn

    settings = _settings()
    if service not in SERVICES:
        raise _fail(f"unknown service {service!r}; choose one of: {', '.join(SERVICES)}")
    factory, port_setting = SERVICES[service]
    if not (service == "discovery" and settings.redis_url):  # discovery needs no database
        _runtime_env(settings)
    uvicorn.run(
        factory,
        factory=True,
        host=host or settings.gateway_host,
        port=port or int(getattr(settings, port_setting)),
        workers=workers,
        log_config=None,
        proxy_headers=True,
        access_log=False,
    )


@app.command()
def web(
    build_only: Annotated[
        bool, typer.Option("--build-only", help="Install and build (if needed), then exit.")
    ] = False,
    skip_build: Annotated[
        bool, typer.Option("--skip-build", help="Serve the existing build without checking it.")
    ] = False,
    host: Annotated[str | None, typer.Option(help="Interface to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default TORALE_WEB_PORT).")] = None,
) -> None:
    """Build the web app (cached: only when its sources changed) and serve it with `next start`."""
    from torale import web as webapp

    settings = _settings()
    try:
        if not skip_build:
            webapp.build(echo=typer.echo)
        if build_only:
            typer.echo(f"web app built in {webapp.frontend_dir() / '.next'}")
            return
        command = webapp.serve_command(settings, host=host, port=port)
    except webapp.WebAppError as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"Web app  {command.url}  (API: {command.env['TORALE_API_URL']})")
    missing = [
        o for o in webapp.web_origins(port or settings.web_port) if o not in settings.cors_origins
    ]
    if missing:
        typer.echo(
            f"note: the gateway must accept this origin: run it with "
            f"TORALE_CORS_ORIGINS='{json.dumps(webapp.cors_origins_with_web(settings, port))}'",
            err=True,
        )
    os.chdir(command.cwd)
    os.execve(command.argv[0], command.argv, command.env)  # noqa: S606 - becomes next start


# ------------------------------------------------------------------------- users


def _run(coro: Any) -> Any:
    import asyncio

    return asyncio.run(coro)


users_app = typer.Typer(help="Local users (when Torale serves auth itself).", no_args_is_help=True)
app.add_typer(users_app, name="users")


@users_app.command("create")
def users_create(
    email: str,
    password: Annotated[
        str | None,
        typer.Option(help="Password (a random one is generated and printed if omitted)."),
    ] = None,
) -> None:
    """Create a user in auth.users (email confirmed)."""
    import secrets

    from torale.auth.local import AuthError, LocalAuth
    from torale.db.session import as_owner, create_engine, session_factory

    settings = _settings()
    url = _database_url(settings)
    chosen = password or secrets.token_urlsafe(12)

    async def create() -> str:
        engine = create_engine(url)
        try:
            async with as_owner(session_factory(engine)) as session:
                user = await LocalAuth(settings).create_user(session, email, chosen)
                return str(user.id)
        finally:
            await engine.dispose()

    try:
        user_id = _run(create())
    except AuthError as exc:
        raise _fail(exc.message) from None
    typer.echo(f"created user {email} ({user_id})")
    if password is None:
        typer.echo(f"password: {chosen}")


@app.command()
def token(
    email: str,
    ttl: Annotated[int, typer.Option(help="Lifetime in seconds.")] = 3600,
) -> None:
    """Print an access token for a user (on the last line), for scripts and tests."""
    from torale.auth.local import LocalAuth
    from torale.auth.tokens import issue_access_token
    from torale.db.session import as_owner, create_engine, session_factory

    settings = _settings()
    url = _database_url(settings)

    async def find() -> Any:
        engine = create_engine(url)
        try:
            async with as_owner(session_factory(engine)) as session:
                return await LocalAuth(settings).user_by_email(session, email)
        finally:
            await engine.dispose()

    user = _run(find())
    if user is None:
        raise _fail(f"no user with email {email}; create one with `torale users create {email}`")
    access, _ = issue_access_token(settings, user.id, user.email, ttl_seconds=ttl)
    typer.echo(access)


# ------------------------------------------------------------------------- up


@dataclass
class ServiceProcess:
    """A child process of `torale up`, restarted with backoff when it dies."""

    name: str
    argv: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    log_path: Path | None = field(default=None)

    def start(self) -> None:
        self.process = subprocess.Popen(self.argv, env=self.env, stdin=subprocess.DEVNULL)  # noqa: S603
        self.next_start = 0.0

    def poll(self) -> None:
        if self.process is None or self.process.poll() is None:
            return
        now = time.monotonic()
        if not self.next_start:
            delay = min(30.0, 2.0**self.restarts)
            typer.echo(
                f"{self.name} exited with code {self.process.returncode}; restarting in {delay:.0f}s",
                err=True,
            )
            self.next_start = now + delay
            self.restarts += 1
        elif now >= self.next_start:
            self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()

    def wait(self, timeout: float) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def service_commands(settings: Settings) -> list[tuple[str, list[str]]]:
    """Every service `torale up` runs, as (name, argv)."""
    me = [sys.executable, "-m", "torale"]
    commands = [
        ("discovery", [*me, "serve", "discovery"]),
        ("gateway", [*me, "serve", "gateway"]),
        ("worker", [*me, "worker"]),
        ("beat", [*me, "beat"]),
    ]
    if settings.web_enabled:  # built by `torale up` beforehand (see _prepare_web)
        commands.append(("web", [*me, "web", "--skip-build"]))
    return commands


def _prepare_web(settings: Settings) -> tuple[Settings, str | None]:
    """Build the web app for `torale up` (cached) and let the gateway accept its origin.

    Without npm (or when the build fails) warn and carry on without it: everything else runs.
    Returns the settings to use and, when the web app will not run, why.
    """
    if not settings.web_enabled:
        return settings, "disabled (TORALE_WEB_ENABLED=false)"
    from torale import web as webapp

    try:
        webapp.build(echo=lambda line: typer.echo(line, err=True))
    except webapp.WebAppError as exc:
        typer.echo(f"warning: {exc}", err=True)
        typer.echo("warning: starting without the web app; the API works as usual.", err=True)
        disabled = settings.model_copy(update={"web_enabled": False})
        return disabled, "not running (see the warning above)"
    origins = webapp.cors_origins_with_web(settings)
    if origins != settings.cors_origins:  # the gateway child reads it from the environment
        os.environ["TORALE_CORS_ORIGINS"] = json.dumps(origins)
    return settings, None


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop


@app.command()
def up() -> None:
    """Run the whole system on this machine until interrupted (Ctrl-C or SIGTERM)."""
    from torale.db.migrate import migrate
    from torale.embedded import EmbeddedError, EmbeddedServers
    from torale.runtime import Runtime, clear_runtime, write_runtime

    settings = _settings()
    servers = EmbeddedServers(
        settings.data_dir,
        need_postgres=not settings.database_url,
        need_redis=not settings.redis_url,
    )
    signal.signal(signal.SIGTERM, _raise_stop)
    children: list[ServiceProcess] = []
    try:
        try:
            servers.start()
        except EmbeddedError as exc:
            raise _fail(str(exc)) from None
        database_url = settings.database_url or servers.database_url or ""
        redis_url = settings.redis_url or servers.redis_url or ""
        migrate(database_url)
        write_runtime(settings, Runtime(database_url, redis_url, os.getpid()))
        settings, web_note = _prepare_web(settings)
        env = {**os.environ, "TORALE_DATABASE_URL": database_url, "TORALE_REDIS_URL": redis_url}
        env.setdefault(
            "DISCOVERY_SERVICE_URL", f"http://{settings.gateway_host}:{settings.discovery_port}"
        )
        for name, argv in service_commands(settings):
            child = ServiceProcess(name, argv, env)
            child.start()
            children.append(child)
        typer.echo(f"Torale is running (data in {settings.data_dir.resolve()})")
        if web_note is None:
            from torale.web import web_url

            typer.echo(f"\n  Web app   {web_url(settings)}   <- open this in your browser\n")
        else:
            typer.echo(f"  Web app   {web_note}")
        typer.echo(
            f"  API       {settings.gateway_url}/api/v1  (docs: {settings.gateway_url}/docs)"
        )
        typer.echo(f"  database  {database_url}")
        typer.echo(f"  redis     {redis_url}")
        typer.echo("Press Ctrl-C to stop.")
        while True:
            for child in children:
                child.poll()
            time.sleep(0.5)
    except (KeyboardInterrupt, _Stop):
        typer.echo("stopping…", err=True)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for child in children:
            child.stop()
        for child in children:
            child.wait(timeout=20)
        clear_runtime(settings)
        servers.stop()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        typer.echo("stopped", err=True)
