"""`torale worker --processes N` as it runs in production: real processes on the test's Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from celery import Celery

from tests.test_cli import torale
from torale.worker_processes import cpu_quota, default_processes


@pytest.fixture
def worker_env(database_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TORALE_", "SUPABASE_"))}
    env.update(
        TORALE_DATABASE_URL=database_url,
        TORALE_REDIS_URL=redis_url,
        TORALE_LOG_JSON="false",
        TORALE_EMBEDDING_PROVIDER="local",
    )
    return env


@pytest.fixture
def control(redis_url: str) -> Iterator[Celery]:
    app = Celery(broker=redis_url)
    try:
        yield app
    finally:
        app.close()


def start_worker(env: dict[str, str], processes: int) -> subprocess.Popen[bytes]:
    # a queue of its own, so this worker never takes another test's messages
    queue = f"test-{uuid.uuid4().hex[:8]}"
    argv = [sys.executable, "-m", "torale", "worker", "--queues", queue]
    argv += ["--processes", str(processes)]
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_nodes(app: Celery, process: subprocess.Popen[bytes], count: int) -> set[str]:
    """The node names of this worker's processes once `count` of them answer a ping."""
    pids = {process.pid, *(c.pid for c in psutil.Process(process.pid).children())}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
        replies = app.control.ping(timeout=1.0) or []
        nodes = {name for reply in replies for name in reply}
        mine = {n for n in nodes if n.startswith(f"worker{process.pid}.")}
        if len(mine) >= count and len(pids) == count:
            return mine
        pids = {process.pid, *(c.pid for c in psutil.Process(process.pid).children())}
    raise AssertionError(f"the worker's {count} processes did not all answer a ping")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def two_processes(
    env: dict[str, str], control: Celery
) -> Iterator[tuple[subprocess.Popen[bytes], psutil.Process, set[str]]]:
    """A worker of two processes once both answer: (the parent, its child, their node names)."""
    process = start_worker(env, processes=2)
    try:
        nodes = wait_for_nodes(control, process, 2)
        (child,) = psutil.Process(process.pid).children()
        yield process, child, nodes
    finally:
        stop(process)


def test_every_process_consumes_and_sigterm_stops_them_all(
    worker_env: dict[str, str], control: Celery
) -> None:
    with two_processes(worker_env, control) as (process, child, nodes):
        assert {n.split("@")[0] for n in nodes} == {f"worker{process.pid}.{i}" for i in (0, 1)}
        time.sleep(3)  # up and staying up: both still answer
        replies = control.control.ping(timeout=1.0) or []
        assert nodes <= {name for reply in replies for name in reply}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE


def test_a_dead_child_takes_the_worker_down_for_the_supervisor_to_restart(
    worker_env: dict[str, str], control: Celery
) -> None:
    with two_processes(worker_env, control) as (process, child, _):
        child.kill()
        assert process.wait(timeout=60) == 1
        assert process.stderr is not None
        assert "worker_process_exited" in process.stderr.read().decode()


def test_children_stop_when_the_parent_is_killed(
    worker_env: dict[str, str], control: Celery
) -> None:
    with two_processes(worker_env, control) as (process, child, _):
        process.kill()  # no chance to stop its children: the kernel tells them
        process.wait(timeout=10)
        child.wait(timeout=60)
        assert not child.is_running()


def test_processes_need_the_thread_pool(worker_env: dict[str, str]) -> None:
    result = torale("worker", "--pool", "prefork", "--processes", "2", env=worker_env)
    assert result.returncode == 1
    assert "--processes needs --pool threads" in result.stderr


def test_cpu_quota_reads_cgroup_v2_limits() -> None:
    assert cpu_quota("max 100000\n") is None
    assert cpu_quota("150000 100000\n") == 1.5
    assert cpu_quota("50000 100000") == 0.5
    assert cpu_quota("") is None and cpu_quota("garbage") is None


def test_default_processes_follow_the_container_limit(tmp_path: Path) -> None:
    cpus = len(os.sched_getaffinity(0))
    assert default_processes(cgroup=tmp_path) == min(4, cpus)  # no cpu.max: not a cgroup limit
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert default_processes(cgroup=tmp_path) == 1  # half a CPU still gets one process
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert default_processes(cgroup=tmp_path, limit=1) == 1
