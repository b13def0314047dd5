"""The browser half of ui_bench: headless Chromium opening the Dagster UI's pages, timed.

A load's time is from navigation start to the first animation frame with the page's content
shown and no Dagster loading placeholder on it; each load lists the GraphQL requests it made
before that, which are then replayed over plain HTTP (see ui_bench's docstring).
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import psutil
import requests
from common import tree_cpu
from playwright.sync_api import BrowserContext, Page, Playwright, ViewportSize
from playwright.sync_api import Request as BrowserRequest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

if TYPE_CHECKING:
    from ui_bench import Result

CHROMIUM = "/usr/bin/chromium"
# The network is closed: nothing in the background may try to reach it.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
PAGE_TIMEOUT = 120.0  # seconds a load may take before it counts as failed
SETTLE = 2.0  # seconds the content must stay without a loading placeholder after it showed

# Dagster's loading placeholders: its spinners and its skeletons (CSS-module class names).
LOADING = ".spinnerGlobal, [class*='Skeleton_skeleton']"
# True once the page shows `needle` and no loading placeholder is on it: then the time since
# navigation start, in ms.
READY_JS = """([needle, loading]) => {
  if (!document.body || document.querySelector(loading)) return false;
  if (!document.body.innerText.includes(needle)) return false;
  return performance.now() || 0.001;
}"""
# A loading placeholder back on the page: what it sits in (the nearest text around it).
RELAPSE_JS = """(loading) => {
  const found = document.querySelector(loading);
  if (!found) return false;
  let node = found;
  while (node.parentElement && !(node.innerText || '').trim()) node = node.parentElement;
  const text = (node.innerText || '').trim().replace(/\\s+/g, ' ').slice(0, 120);
  return `${found.className.toString().split(' ')[0]} in "${text}"`;
}"""


@dataclass(frozen=True)
class PageSpec:
    name: str
    path: str
    needle: str  # text on the page once its content has loaded


@dataclass
class Request:
    op: str
    start_ms: float  # from navigation start
    end_ms: float  # response end, from navigation start
    status: int
    bytes: int

    @property
    def ms(self) -> float:
        return self.end_ms - self.start_ms


@dataclass
class Load:
    page: str
    kind: str  # first, cold, warm
    rep: int
    ms: float  # navigation start -> content shown, no spinner
    dom_content_loaded_ms: float
    relapsed: str  # the loading placeholder that came back within SETTLE seconds, if any
    graphql: list[Request] = field(default_factory=list)  # started before the content showed
    text: str = ""  # the first lines of the page's main text, to see what was measured


@dataclass
class Replay:
    op: str
    page: str
    ms: list[float]
    bytes: int


def chromium_pid() -> int | None:
    """The browser process Playwright started (a descendant of this process)."""
    for proc in psutil.Process().children(recursive=True):
        try:
            if proc.exe() == CHROMIUM or "chromium" in proc.name():
                parent = proc.parent()
                if parent is None or "chromium" not in parent.name():
                    return proc.pid
        except psutil.Error:
            continue
    return None


class Recorder:
    """The GraphQL requests a page makes, with their timing (Playwright's request timing)."""

    def __init__(self) -> None:
        self.finished: list[tuple[BrowserRequest, str]] = []
        self.bodies: dict[str, str] = {}  # op -> the request's JSON body, for the replays

    def attach(self, page: Page) -> None:
        page.on("requestfinished", self._finished)

    def _finished(self, request: BrowserRequest) -> None:
        if "/graphql" not in request.url:
            return
        op = request.url.split("op=", 1)[1].split("&", 1)[0] if "op=" in request.url else "?"
        self.finished.append((request, op))
        body = request.post_data
        if body and op not in self.bodies:
            self.bodies[op] = body

    def since(self, origin_ms: float, until_ms: float) -> list[Request]:
        """The requests of the load whose navigation started at ``origin_ms`` (epoch ms) that
        started before ``until_ms`` (ms from that navigation start)."""
        out: list[Request] = []
        for request, op in self.finished:
            timing = request.timing
            start = timing["startTime"] - origin_ms
            if start < 0 or start > until_ms:
                continue
            end = start + max(timing["responseEnd"], 0.0)
            response = request.response()
            sizes = request.sizes()
            out.append(
                Request(
                    op,
                    round(start, 1),
                    round(end, 1),
                    response.status if response else 0,
                    int(sizes.get("responseBodySize", 0)),
                )
            )
        return sorted(out, key=lambda r: r.start_ms)


def open_page(
    page: Page,
    recorder: Recorder,
    base: str,
    spec: PageSpec,
    kind: str,
    rep: int,
    screenshot: Path | None,
) -> Load:
    page.goto(base + spec.path, wait_until="commit", timeout=PAGE_TIMEOUT * 1000)
    handle = page.wait_for_function(
        READY_JS,
        arg=[spec.needle, LOADING],
        polling="raf",
        timeout=PAGE_TIMEOUT * 1000,
    )
    ready = float(handle.json_value())
    if screenshot is not None:
        page.screenshot(path=str(screenshot))
    try:
        relapsed = str(
            page.wait_for_function(
                RELAPSE_JS, arg=LOADING, polling="raf", timeout=SETTLE * 1000
            ).json_value()
        )
    except PlaywrightTimeout:  # nothing came back
        relapsed = ""
    origin = float(page.evaluate("performance.timeOrigin"))
    dcl = float(
        page.evaluate(
            "(performance.getEntriesByType('navigation')[0] || {}).domContentLoadedEventEnd || 0"
        )
    )
    text = page.evaluate("(document.querySelector('main') || document.body).innerText")
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    load = Load(
        spec.name,
        kind,
        rep,
        round(ready, 1),
        round(dcl, 1),
        relapsed,
        recorder.since(origin, ready),
        " | ".join(lines[:40])[:600],
    )
    slowest = max(load.graphql, key=lambda r: r.ms, default=None)
    print(
        f"  {spec.name} {kind} #{rep}: {ready / 1000:.2f} s"
        + (f" (slowest query {slowest.op} {slowest.ms / 1000:.2f} s)" if slowest else "")
        + (f" - then loading again: {relapsed}" if relapsed else ""),
        flush=True,
    )
    return load


def measure_pages(
    pw: Playwright,
    base: str,
    pages: list[PageSpec],
    reps: int,
    shots: Path | None,
    result: Result,
) -> dict[str, tuple[str, str]]:
    """First, cold and warm loads of each page; returns the GraphQL bodies seen, by op."""
    browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    result.versions["chromium"] = browser.version
    bodies: dict[str, tuple[str, str]] = {}

    def context() -> tuple[BrowserContext, Page, Recorder]:
        ctx = browser.new_context(viewport=VIEWPORT)
        page = ctx.new_page()
        recorder = Recorder()
        recorder.attach(page)
        return ctx, page, recorder

    def shot(name: str) -> Path | None:
        return shots / f"{name}.png" if shots is not None else None

    try:
        # The first load of each page after the backfill: nothing cached anywhere.
        for spec in pages:
            ctx, page, recorder = context()
            result.loads.append(
                open_page(page, recorder, base, spec, "first", 1, shot(f"{spec.name}-first"))
            )
            for op, body in recorder.bodies.items():
                bodies.setdefault(op, (spec.name, body))
            ctx.close()
        for spec in pages:
            for rep in range(1, reps + 1):
                ctx, page, recorder = context()
                result.loads.append(open_page(page, recorder, base, spec, "cold", rep, None))
                last = rep == reps
                for warm in range(1, reps + 1) if last else ():
                    shot_path = shot(f"{spec.name}-warm") if warm == reps else None
                    result.loads.append(
                        open_page(page, recorder, base, spec, "warm", warm, shot_path)
                    )
                for op, body in recorder.bodies.items():
                    bodies.setdefault(op, (spec.name, body))
                ctx.close()
    finally:
        pid = chromium_pid()
        result.cpu_seconds["chromium"] = tree_cpu(pid) if pid else 0.0
        browser.close()
    return bodies


def replay(base: str, bodies: dict[str, tuple[str, str]], times: int) -> list[Replay]:
    """Each query the pages sent, again over plain HTTP: the server's wall time."""
    out: list[Replay] = []
    with requests.Session() as session:
        for op, (page, body) in sorted(bodies.items()):
            if json.loads(body).get("query", "").lstrip().startswith(("mutation", "subscription")):
                continue
            seconds: list[float] = []
            size = 0
            for _ in range(times):
                began = time.perf_counter()
                answer = session.post(
                    f"{base}/graphql?op={op}",
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=300,
                )
                seconds.append(round((time.perf_counter() - began) * 1000, 1))
                size = len(answer.content)
            out.append(Replay(op, page, seconds, size))
    return sorted(out, key=lambda r: -statistics.median(r.ms))
