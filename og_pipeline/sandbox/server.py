"""Assembles the sandbox ASGI app and runs it with uvicorn.

`state.SandboxState` (made by `state.make_state`) holds everything the routes share: merchant
store, Ometria state, one fault injector per API, keys. `build_app` mounts /ordergroove, /ometria
and /_sandbox on one Starlette app. `SandboxServer` binds a socket itself (so port 0 yields a
known random port), runs uvicorn in a background thread and polls until it answers; `serve` runs
the same app blocking in the calling thread, for the CLI and for `og-pipeline dev`.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Self

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from .columns import MerchantSpec
from .faults import FaultSpec
from .http_routes import control_routes, ometria_routes
from .merchant import Merchant
from .ometria import DEFAULT_CONTACT_FIELDS, DEFAULT_EVENT_TYPES, OmetriaState
from .ordergroove_api import ordergroove_routes
from .state import (
    OG_KEY,
    OG_LIMITED_KEY,
    OMETRIA_KEY,
    WEBHOOK_KEY,
    SandboxState,
    make_state,
)
from .webhooks import WebhookSender


def build_app(state: SandboxState) -> Starlette:
    og = ordergroove_routes(
        state.merchant,
        state.faults["ordergroove"],
        {state.keys["ordergroove"]},
        {state.keys["ordergroove_limited"]},
        state.cursors,
    )
    return Starlette(
        routes=[
            Mount("/ordergroove", routes=og),
            Mount("/ometria", routes=ometria_routes(state)),
            Mount("/_sandbox", routes=control_routes(state)),
        ]
    )


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _uvicorn(app: Starlette, log_level: str) -> uvicorn.Server:
    config = uvicorn.Config(app, log_level=log_level, lifespan="off", access_log=False)
    return uvicorn.Server(config)


class SandboxServer:
    """`with SandboxServer(spec, port=0) as sb:` serves on 127.0.0.1 in a background thread."""

    def __init__(
        self,
        spec: MerchantSpec | Merchant,
        port: int = 0,
        host: str = "127.0.0.1",
        og_key: str = OG_KEY,
        og_limited_key: str = OG_LIMITED_KEY,
        ometria_key: str = OMETRIA_KEY,
        webhook_key: str = WEBHOOK_KEY,
        ometria_rate_limit: float = 8.0,
        contact_fields: frozenset[str] = DEFAULT_CONTACT_FIELDS,
        event_types: frozenset[str] = DEFAULT_EVENT_TYPES,
        log_level: str = "warning",
    ) -> None:
        self.state = make_state(
            spec,
            og_key,
            og_limited_key,
            ometria_key,
            webhook_key,
            ometria_rate_limit,
            contact_fields,
            event_types,
        )
        self.host = host
        self.port = port
        self.log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    # -------------------------------------------------------------- accessors

    @property
    def merchant(self) -> Merchant:
        return self.state.merchant

    @property
    def ometria(self) -> OmetriaState:
        return self.state.ometria

    @property
    def keys(self) -> dict[str, str]:
        return dict(self.state.keys)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ordergroove_url(self) -> str:
        return self.url + "/ordergroove"

    @property
    def ometria_url(self) -> str:
        return self.url + "/ometria"

    def set_faults(self, api: str, spec: FaultSpec) -> None:
        self.state.faults[api].set(spec)

    def clear_faults(self) -> None:
        for injector in self.state.faults.values():
            injector.clear()

    def webhook_sender(
        self, url: str, keys: list[str] | None = None, seed: int = 0, **kwargs: Any
    ) -> WebhookSender:
        return WebhookSender(
            self.merchant, url, keys or [self.state.keys["webhook"]], seed, **kwargs
        )

    # -------------------------------------------------------------- lifecycle

    def start(self, timeout: float = 30.0) -> Self:
        self._sock = _bind(self.host, self.port)
        self.port = self._sock.getsockname()[1]
        self._server = _uvicorn(build_app(self.state), self.log_level)
        sock = self._sock
        server = self._server
        self._thread = threading.Thread(
            target=lambda: server.run(sockets=[sock]), name="og-sandbox", daemon=True
        )
        self._thread.start()
        _wait_until_answering(self.host, self.port, server, self._thread, timeout)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._server = self._thread = self._sock = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _wait_until_answering(
    host: str, port: int, server: uvicorn.Server, thread: threading.Thread, timeout: float
) -> None:
    """Polls until uvicorn reports started and the port accepts a connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("sandbox server thread exited during startup")
        if server.started:
            try:
                with socket.create_connection((host, port), timeout=1):
                    return
            except OSError:
                pass
        time.sleep(0.005)  # a poll interval, not a synchronisation
    raise TimeoutError(f"sandbox did not answer on {host}:{port} within {timeout}s")


def serve(
    spec: MerchantSpec | Merchant,
    host: str = "127.0.0.1",
    port: int = 8700,
    faults: dict[str, FaultSpec] | None = None,
    webhook_url: str | None = None,
    webhook_rate: float | None = None,
    webhook_seed: int = 0,
    on_ready: Callable[[SandboxState, str], None] | None = None,
    stop: threading.Event | None = None,
    log_level: str = "warning",
    **keys: Any,
) -> None:
    """Serves the sandbox in the calling thread until Ctrl-C (main thread) or `stop` is set.

    `keys` takes make_state's keyword arguments (og_key, ometria_key, ometria_rate_limit, ...).
    `on_ready(state, base_url)` runs once the port answers.
    """
    state = make_state(spec, **keys)
    for api, fault in (faults or {}).items():
        state.faults[api].set(fault)
    sock = _bind(host, port)
    base = f"http://{host}:{sock.getsockname()[1]}"
    server = _uvicorn(build_app(state), log_level)
    stop = stop or threading.Event()

    def background() -> None:
        # Wait for the server (or an early stop), then announce and optionally stream webhooks.
        while not server.started and not stop.is_set() and not server.should_exit:
            stop.wait(0.01)
        if stop.is_set() or server.should_exit:
            return
        if on_ready is not None:
            on_ready(state, base)
        if webhook_url:
            sender = WebhookSender(
                state.merchant, webhook_url, [state.keys["webhook"]], seed=webhook_seed
            )
            sender.stream(None, webhook_rate or 1.0, stop=stop)

    def watch_stop() -> None:
        stop.wait()
        server.should_exit = True

    threading.Thread(target=background, name="og-sandbox-ready", daemon=True).start()
    threading.Thread(target=watch_stop, name="og-sandbox-stop", daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        stop.set()
        sock.close()
