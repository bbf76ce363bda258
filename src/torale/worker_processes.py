"""Run one Celery worker as several processes that share their code and model pages.

A Python process holds the GIL, so one worker uses about 1.3 cores however many threads it
runs. Celery's prefork pool uses every core, but its idle parent keeps its own copy of each page
its children write to (Python writes reference counts into every object it touches): three
processes' worth of memory for two processes' work. Here the parent loads everything once
(task modules, the embedding model), freezes the garbage collector's view of those objects so
collections do not write to them, then forks: every process, the parent included, is a full
threaded worker, and a page is copied at most once per process that writes to it.

The processes live and die together: a child gets SIGTERM when the parent dies, the parent
stops its children when it stops, and when a child exits the parent shuts down too, so the
supervisor (`torale up`, systemd, Kubernetes) restarts one whole worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
import math
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import structlog

from torale.config import Settings

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1  # from linux/prctl.h


def default_processes(limit: int = 4, cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """One process per CPU this process may use, up to `limit`: the CPUs it may run on, fewer
    when a cgroup (v2) quota caps it, as a container's CPU limit does."""
    affinity = getattr(os, "sched_getaffinity", None)  # not on macOS
    cpus = len(affinity(0)) if affinity else os.cpu_count() or 1
    quota = cpu_quota((cgroup / "cpu.max").read_text() if (cgroup / "cpu.max").is_file() else "")
    if quota is not None:
        cpus = min(cpus, math.ceil(quota))
    return max(1, min(limit, cpus))


def cpu_quota(cpu_max: str) -> float | None:
    """CPUs allowed by a cgroup v2 `cpu.max` ("150000 100000" -> 1.5); None when unlimited."""
    parts = cpu_max.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    try:
        quota, period = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def preload(settings: Settings) -> None:
    """Import the task modules and load the local embedding model, then freeze those objects
    out of the collector's reach (nothing after this point is shared, so nothing else is)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no Rust threads across fork
    from torale.ai.embeddings import LocalMiniLM, get_embedder
    from torale.worker import celery_app

    celery_app.loader.import_default_modules()
    embedder = get_embedder(settings)
    if isinstance(embedder, LocalMiniLM):
        embedder.load()
    freeze()


def freeze() -> None:
    """Collect now, then move every live object to the permanent generation."""
    gc.collect()
    gc.freeze()


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc on Linux, looked up once (find_library runs a subprocess); None elsewhere."""
    name = ctypes.util.find_library("c") if sys.platform == "linux" else None
    try:
        return ctypes.CDLL(name, use_errno=True) if name else None
    except OSError:
        return None


def compact_malloc() -> None:
    """glibc: two malloc arenas instead of eight per core, and a fixed mmap threshold, so a
    threaded worker does not keep a heap per thread nor the freed buffers of forward passes."""
    libc = _libc()
    try:
        if libc is not None:
            m_mmap_threshold, m_arena_max = -3, -8  # from glibc's malloc.h
            libc.mallopt(m_arena_max, 2)
            libc.mallopt(m_mmap_threshold, 256 * 1024)
    except AttributeError:  # not glibc (musl has no mallopt): nothing to tune
        return


def _die_with_parent(parent: int) -> None:
    """SIGTERM this (child) process when `parent` dies, including if it already has."""
    libc = _libc()
    if libc is not None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died between the fork and the prctl
        os._exit(1)


def run_processes(processes: int, run: Callable[[int], int | None]) -> int:
    """Call `run(index)` in `processes` processes: this one (index 0) and forked children.

    `run` blocks until its worker stops (a signal, or a child's exit here) and returns its exit
    code. Returns this process's: 1 when a child exited on its own, else `run(0)`'s.
    """
    children: dict[int, int] = {}  # pid -> index
    stopping, child_died = threading.Event(), threading.Event()
    parent = os.getpid()
    for index in range(1, processes):
        pid = os.fork()
        if pid == 0:
            _die_with_parent(parent)
            code = 1
            try:
                code = run(index) or 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                log.exception("worker_process_failed", index=index)
                code = 1
            finally:
                os._exit(code)
        children[pid] = index
    if children:
        threading.Thread(
            target=_watch_children,
            args=(children, stopping, child_died),
            name="worker-children",
            daemon=True,
        ).start()
    try:
        code = run(0) or 0
    finally:
        stopping.set()
        _stop_children(children)
    return 1 if child_died.is_set() else code


def _watch_children(
    children: dict[int, int], stopping: threading.Event, child_died: threading.Event
) -> None:
    """Shut this process's worker down (warm, as on SIGTERM) as soon as a child exits.

    Waits for these pids only: other code here runs subprocesses and reaps them itself."""
    while not stopping.wait(0.5):
        statuses = {pid: _exit_status(pid) for pid in children}
        exited = [(pid, status) for pid, status in statuses.items() if status is not None]
        if not exited:
            continue
        pid, status = exited[0]
        index = children.pop(pid)
        if stopping.is_set():
            return
        child_died.set()
        log.error(
            "worker_process_exited",
            index=index,
            pid=pid,
            exit_code=os.waitstatus_to_exitcode(status),
            action="stopping the other worker processes so the supervisor restarts them together",
        )
        os.kill(os.getpid(), signal.SIGTERM)
        return


def _exit_status(pid: int) -> int | None:
    """The wait status of child `pid` if it has exited (reaping it), else None."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # reaped elsewhere: it is gone all the same
        return 0
    return status if done else None


def _stop_children(children: dict[int, int]) -> None:
    for pid in list(children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in list(children):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
