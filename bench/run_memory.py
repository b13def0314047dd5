"""Peak memory of the run workers a Dagster daemon launches (a UI backfill's runs).

The daemon asks a code server (``dagster api grpc``) to start each run; the code server spawns
the run worker as a child, and og-pipeline's writer is a child of that. So each direct child of a
code server, with its own children, is one run's process tree; its PSS (not RSS: shared pages
counted once) is read every ``poll`` seconds and the peak kept.

Also a command: ``python bench/run_memory.py --while-pid PID --json out.json`` samples until PID
ends, writing the peaks after every look (to watch a benchmark that does not itself).
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

MIB = 1024 * 1024


@dataclass
class WorkerPeak:
    pid: int
    first_seen: float  # time.time()
    last_seen: float
    peak_mib: float = 0.0
    processes_at_peak: int = 0


@dataclass
class RunWorkerMemory:
    poll: float = 1.0
    peaks: dict[int, WorkerPeak] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> RunWorkerMemory:
        self._thread = threading.Thread(target=self._run, name="run-memory", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            self.sample()

    def sample(self) -> None:
        """One look at every run worker's tree."""
        now = time.time()
        for worker in run_workers():
            try:
                tree = [worker, *worker.children(recursive=True)]
                pss = 0
                for process in tree:
                    try:
                        pss += process.memory_full_info().pss
                    except (psutil.NoSuchProcess, psutil.AccessDenied):
                        continue
            except psutil.NoSuchProcess:
                continue
            peak = self.peaks.setdefault(worker.pid, WorkerPeak(worker.pid, now, now))
            peak.last_seen = now
            if pss / MIB > peak.peak_mib:
                peak.peak_mib, peak.processes_at_peak = pss / MIB, len(tree)

    def as_json(self) -> list[dict[str, float]]:
        return [asdict(peak) for peak in sorted(self.peaks.values(), key=lambda p: p.first_seen)]


def run_workers() -> list[psutil.Process]:
    """The direct children of every code server, but multiprocessing's resource trackers."""
    workers: list[psutil.Process] = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if " api grpc" not in cmdline:
            continue
        try:
            children = process.children()
        except psutil.NoSuchProcess:
            continue
        for child in children:
            try:
                if "resource_tracker" not in " ".join(child.cmdline()):
                    workers.append(child)
            except psutil.NoSuchProcess:
                continue
    return workers


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--while-pid", type=int, required=True)
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--poll", type=float, default=1.0)
    args = parser.parse_args()
    memory = RunWorkerMemory(poll=args.poll)
    while psutil.pid_exists(args.while_pid):
        memory.sample()
        args.json.write_text(json.dumps(memory.as_json(), indent=1))
        time.sleep(args.poll)


if __name__ == "__main__":
    main()
