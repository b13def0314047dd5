"""HTTP routes of the Ometria stand-in (/ometria) and the sandbox control plane (/_sandbox).

The control plane needs no auth and exists only on the sandbox: it lets tests and `og-pipeline
dev` running in another process inspect what Ometria received, read the merchant's ground truth
and its bad records (and repair one), set faults and mutate the merchant the way a shopper would.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .faults import FaultSpec
from .ordergroove_api import apply_faults
from .state import SandboxState


def _json(data: Any, status: int = 200) -> Response:
    def default(value: Any) -> Any:
        if isinstance(value, date | datetime):
            return value.isoformat()
        raise TypeError(type(value).__name__)

    return Response(
        json.dumps(data, default=default), status_code=status, media_type="application/json"
    )


def ometria_routes(state: SandboxState) -> list[Route]:
    async def push(request: Request) -> Response:
        # One event loop: plain counters are safe between awaits.
        state.pushes_in_flight += 1
        state.most_pushes_in_flight = max(state.most_pushes_in_flight, state.pushes_in_flight)
        try:
            faulted = await apply_faults(state.faults["ometria"])
            if faulted is not None:
                state.ometria.log_fault(faulted.status_code, request.headers.get("x-ometria-auth"))
                return faulted
            body = await request.body()
            result = state.ometria.push(request.headers.get("x-ometria-auth"), body)
            return JSONResponse(result.body, status_code=result.status, headers=result.headers)
        finally:
            state.pushes_in_flight -= 1

    async def errors(request: Request) -> Response:
        faulted = await apply_faults(state.faults["ometria"])
        if faulted is not None:
            return faulted
        if request.headers.get("x-ometria-auth") not in state.ometria.api_keys:
            return JSONResponse({"status": "error", "message": "Invalid API key"}, 401)
        return JSONResponse(state.ometria.latest_errors())

    return [
        Route("/v2/push", push, methods=["POST"]),
        Route("/v2/push/_errors", errors, methods=["GET"]),
    ]


def _at(value: Any) -> int | datetime | None:
    if value is None or isinstance(value, int):
        return value
    parsed = datetime.fromisoformat(str(value))
    if parsed.tzinfo is None:
        raise ValueError("'at' needs a UTC offset")
    return parsed


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise TypeError("expected a JSON object")
    return data


def control_routes(state: SandboxState) -> list[Route]:
    m = state.merchant

    async def contacts(_: Request) -> Response:
        return _json(state.ometria.snapshot()["contacts"])

    async def events(_: Request) -> Response:
        snap = state.ometria.snapshot()
        return _json({"events": snap["events"], "push_counts": snap["event_push_counts"]})

    async def requests_log(_: Request) -> Response:
        return _json(state.ometria.request_log())

    async def ometria_reset(_: Request) -> Response:
        state.ometria.reset()
        return _json({"ok": True})

    async def ground_truth(_: Request) -> Response:
        return _json(m.ground_truth())

    async def bad_records(_: Request) -> Response:
        return _json([b.to_dict() for b in m.bad_records()])

    async def repair(request: Request) -> Response:
        resource, record_id = request.path_params["resource"], request.path_params["record_id"]
        try:
            data = await _body(request)
            m.repair(resource, record_id, at=_at(data.get("at")))
        except KeyError as exc:
            return _json({"detail": f"not found: {exc}"}, 404)
        except (ValueError, TypeError) as exc:
            return _json({"detail": str(exc)}, 409 if "not a bad record" in str(exc) else 400)
        return _json({"ok": True})

    async def health(_: Request) -> Response:
        return _json({"ok": True})

    async def info(_: Request) -> Response:
        return _json({"counts": m.counts(), "keys": state.keys, "zone": m.spec.zone})

    async def faults(request: Request) -> Response:
        try:
            data = await _body(request)
            api = data.get("api", "all")
            names = list(state.faults) if api == "all" else [api]
            if any(n not in state.faults for n in names):
                return _json({"detail": f"unknown api {api!r}"}, 400)
            spec = FaultSpec() if data.get("clear") else FaultSpec.from_dict(data.get("fault", {}))
        except (ValueError, TypeError) as exc:
            return _json({"detail": str(exc)}, 400)
        for name in names:
            state.faults[name].set(spec)
        return _json({"ok": True, "apis": names, "fault": spec.to_dict()})

    async def mutate(request: Request) -> Response:
        action = request.path_params.get("action")
        try:
            data = await _body(request)
            at = _at(data.get("at"))
            if action is None:
                pid = m.create_subscription(
                    data["customer"],
                    data["product"],
                    at=at,
                    quantity=int(data.get("quantity", 1)),
                    frequency=int(data.get("frequency", 0)),
                )
                return _json(m.subscription(pid), 201)
            sub_id = request.path_params["public_id"]
            if action == "cancel":
                return _json(
                    m.cancel_subscription(sub_id, at=at, reason=data.get("reason", "4|Overstocked"))
                )
            if action == "reactivate":
                return _json(m.reactivate_subscription(sub_id, at=at))
            return _json({"detail": f"unknown action {action!r}"}, 404)
        except KeyError as exc:
            return _json({"detail": f"not found: {exc}"}, 404)
        except (ValueError, TypeError) as exc:
            return _json({"detail": str(exc)}, 409 if "already" in str(exc) else 400)

    async def sink_post(request: Request) -> Response:
        body = await request.body()
        with state.sink_lock:
            state.sink.append(
                {"headers": dict(request.headers), "body": body.decode("utf-8", "replace")}
            )
        return _json({"ok": True})

    async def sink_get(_: Request) -> Response:
        with state.sink_lock:
            return _json(list(state.sink))

    return [
        Route("/ometria/contacts", contacts, methods=["GET"]),
        Route("/ometria/events", events, methods=["GET"]),
        Route("/ometria/requests", requests_log, methods=["GET"]),
        Route("/ometria/reset", ometria_reset, methods=["POST"]),
        Route("/ground_truth", ground_truth, methods=["GET"]),
        Route("/bad_records", bad_records, methods=["GET"]),
        Route("/bad_records/{resource}/{record_id}/repair", repair, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/info", info, methods=["GET"]),
        Route("/faults", faults, methods=["POST"]),
        Route("/ordergroove/subscriptions", mutate, methods=["POST"]),
        Route("/ordergroove/subscriptions/{public_id}/{action}", mutate, methods=["POST"]),
        Route("/webhook_sink", sink_post, methods=["POST"]),
        Route("/webhook_sink", sink_get, methods=["GET"]),
    ]
