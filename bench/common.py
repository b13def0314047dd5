"""What the benchmarks share: ports, the machine, child processes, the sandbox, one Postgres.

Imported as a top-level module (``from common import free_port``): the scripts run as
``python bench/X.py``, with bench/ first on ``sys.path``.
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import psutil
import requests

from og_pipeline.db.connection import ensure_database
from og_pipeline.db.embedded import EmbeddedPostgres
from og_pipeline.db.urls import for_dagster

ROOT = Path(__file__).resolve().parents[1]
OG_KEY, OMETRIA_KEY = "sandbox-og-key", "sandbox-ometria-key"
OVERLAP = timedelta(minutes=5)  # the sync's default (OG_SYNC_OVERLAP_MINUTES)
PAGE_SIZE = 100  # OrdergrooveResource's default
PUSH_RATE, PUSH_BATCH = 8.0, 100  # Ometria: requests/s, records per request
# The variables that point og-pipeline (and Dagster) somewhere: none of the caller's reach a run.
PIPELINE_PREFIXES = ("OG_", "ORDERGROOVE_", "OMETRIA_", "DAGSTER_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> str:
    """CPUs, memory, Python and kernel, as the reports' first line says them."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    model = next(
        (line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
        platform.processor(),
    )
    return (
        f"{os.cpu_count()} CPUs ({model}), {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def code_version() -> str:
    """The commit measured (read only), and whether the work tree differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            check=False,
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
        # diff-index reads the index without refreshing it (git status may write it).
        dirty = subprocess.run(
            ["git", "diff-index", "--name-only", "HEAD", "--"],
            check=False,
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head}{' with local changes' if dirty else ''}" if head else "unknown"


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminates a child, and kills it if it is still there 15 s later."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """A child started in a session of its own, and every process it started."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def clean_env(*more_prefixes: str) -> dict[str, str]:
    """This process's environment without the variables of ``PIPELINE_PREFIXES`` (and more)."""
    prefixes = PIPELINE_PREFIXES + more_prefixes
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def sandbox_env(base: str, start: date, home: Path) -> dict[str, str]:
    """The variables that point og-pipeline at the sandbox at ``base``, from ``start``."""
    return {
        "ORDERGROOVE_API_URL": f"{base}/ordergroove",
        "ORDERGROOVE_API_KEY": OG_KEY,
        "OMETRIA_API_URL": f"{base}/ometria",
        "OMETRIA_API_KEY": OMETRIA_KEY,
        "OG_SYNC_START_DATE": start.isoformat(),
        "OG_HOME": str(home),
    }


def sandbox_limits(latency: float, requests_per_minute: float | None) -> list[str]:
    """``og-pipeline sandbox`` options: Ometria's 8 requests/s, Ordergroove's limit if given,
    and ``latency`` seconds before every answer (both APIs): a remote API's round trip instead
    of a co-located sandbox competing for the same CPUs as the sync."""
    options = ["--ometria-rate-limit", str(PUSH_RATE)]
    if requests_per_minute is not None:
        options += ["--requests-per-minute", str(requests_per_minute)]
    if latency > 0:
        options += ["--slow-rate", "1", "--slow-seconds", str(latency)]
    return options


def push_floor(contacts: int) -> float:
    """Seconds Ometria's limit takes at least to push ``contacts``: 8 requests/s of 100."""
    return contacts / (PUSH_RATE * PUSH_BATCH)


@contextmanager
def sandbox(
    tag: str,
    log: Path,
    subscriptions: int,
    start: date,
    days: int,
    *,
    latency: float = 0.0,
    requests_per_minute: float | None = None,
) -> Iterator[str]:
    """``og-pipeline sandbox`` as a process of its own on a free port (seed 1), for the block:
    its base URL once its health answers; stopped after. Its merchant's history spans the
    ``days`` from ``start``, "now" at their end, Ometria's 8 requests/s enforced. ``tag`` starts
    the line that says it is starting."""
    port = free_port()
    print(f"{tag} starting the sandbox on port {port}", flush=True)
    now = datetime.combine(start + timedelta(days=days), datetime.min.time())
    cmd = [
        sys.executable,
        *("-m", "og_pipeline", "sandbox", "--port", str(port)),
        *("--subscriptions", str(subscriptions), "--seed", "1"),
        *("--start-date", start.isoformat(), "--now", now.isoformat()),
        *sandbox_limits(latency, requests_per_minute),
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 600
        while not _healthy(port):
            if proc.poll() is not None:
                raise RuntimeError(f"sandbox exited with {proc.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError("sandbox did not answer within 600 s")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def _healthy(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/_sandbox/health", timeout=5).ok
    except requests.RequestException:
        return False


def sandbox_counts(base: str) -> dict[str, int]:
    """The sandbox merchant's size: subscriptions, customers, orders, products."""
    counts: dict[str, int] = requests.get(f"{base}/_sandbox/info", timeout=60).json()["counts"]
    return counts


def contacts_with_email(base: str) -> int:
    """The sandbox's ground truth: the contacts a full push sends to Ometria."""
    truth = requests.get(f"{base}/_sandbox/ground_truth", timeout=300).json()
    return sum(1 for contact in truth.values() if contact.get("email"))


def push_rate(base: str) -> dict[str, float]:
    """The push's requests to the sandbox Ometria: counts, and rates from first to last."""
    log = requests.get(f"{base}/_sandbox/ometria/requests", timeout=60).json()
    if len(log) < 2:
        return {"requests": len(log)}
    stamps = [r["monotonic"] for r in log]
    span = max(stamps) - min(stamps)
    ok = [r for r in log if r["status"] == 200]
    return {
        "requests": len(log),
        "ok": len(ok),
        "throttled": sum(r["status"] == 429 for r in log),
        "span": span,
        "req_per_s": (len(log) - 1) / span,
        "ok_per_s": (len(ok) - 1) / span,
        "records_per_s": sum(r["count"] for r in ok) / span,
    }


@contextmanager
def embedded_postgres(prefix: str) -> Iterator[tuple[Path, EmbeddedPostgres]]:
    """A temp dir (deleted at the end) with one embedded Postgres in it."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        os.chmod(tmp, 0o755)  # as root, the embedded server runs as its own user
        with EmbeddedPostgres(Path(tmp) / "postgres", delete=True) as server:
            yield Path(tmp), server


def database_pair(server: EmbeddedPostgres, og_db: str, dagster_db: str) -> tuple[str, str]:
    """Fresh databases for og-pipeline and Dagster: their URLs (Dagster's as it takes it)."""
    for name in (og_db, dagster_db):
        ensure_database(server.url(), name)
    return server.url(og_db), for_dagster(server.url(dagster_db))


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live descendants, with the children they reaped."""
    try:
        top = psutil.Process(pid)
        procs = [top, *top.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass  # exited between the listing and the reading
    return total


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all cores), since boot."""
    t = psutil.cpu_times()
    return float(sum(t) - t.idle - getattr(t, "iowait", 0.0))


@dataclass
class TreeRun:
    """A child's wall time, with the peak PSS of its process tree and the CPU around it."""

    started: float = 0.0  # time.time() just before it started
    ended: float = 0.0  # ... once it had exited
    wall_s: float = 0.0  # perf_counter() seconds between the two
    peak: int = 0  # bytes, the process and its children together
    peak_at: float = 0.0  # time.time() of that peak
    peak_main: int = 0  # the process's own peak
    peak_children: int = 0  # its children's (their sum)
    cpu_s: float = 0.0  # the process's user + system CPU seconds, at its last reading
    cpu_busy: float = 0.0  # % of the machine (all processes) while it ran
    load_before: float = 0.0  # the machine's 1-minute load average before it started


def run_tree(
    cmd: list[str],
    env: dict[str, str],
    cwd: Path,
    out_path: Path,
    err_path: Path,
    *,
    name: str,
    poll: float,
    timeout: float | None = None,
) -> TreeRun:
    """Runs ``cmd`` in a session of its own, reading the PSS of its process tree every ``poll``
    seconds; kills the whole group on a timeout or an error, and raises if it failed."""
    run = TreeRun(load_before=os.getloadavg()[0])
    psutil.cpu_percent()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        run.started, began = time.time(), time.perf_counter()
        proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=out, stderr=err, start_new_session=True
        )
        deadline = time.monotonic() + timeout if timeout is not None else None
        try:
            watched = psutil.Process(proc.pid)
            while proc.poll() is None:
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"{name} still running after {timeout:.0f} s")
                try:
                    # PSS, not RSS: a child between fork and exec (Dagster's log tailers, the
                    # writer's spawn) would count the parent's shared pages twice.
                    main = watched.memory_full_info().pss
                    children = sum(
                        c.memory_full_info().pss for c in watched.children(recursive=True)
                    )
                    if main + children > run.peak:
                        run.peak, run.peak_at = main + children, time.time()
                    run.peak_main = max(run.peak_main, main)
                    run.peak_children = max(run.peak_children, children)
                    times = watched.cpu_times()
                    run.cpu_s = times.user + times.system
                except psutil.Error:
                    pass  # a process exiting between the listing and the reading
                time.sleep(poll)
            run.ended, run.wall_s = time.time(), time.perf_counter() - began
        finally:
            if proc.poll() is None:
                kill_group(proc)
    run.cpu_busy = psutil.cpu_percent()
    if proc.returncode != 0:
        raise RuntimeError(
            f"{name} exited {proc.returncode}:\n{out_path.read_text()[-4000:]}\n"
            f"{err_path.read_text()[-4000:]}"
        )
    return run
