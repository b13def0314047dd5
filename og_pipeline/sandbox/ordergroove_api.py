"""The Ordergroove REST stand-in, mounted under /ordergroove.

Each request: fault injection first (no side effects), then `x-api-key` (401 unknown, 403 for
a key without Bulk Operations), then filters parsed into a key range [lo, hi) over the object
type's sorted index plus an optional per-record predicate, then one page (cursor pagination when
`X-OG-API-VERSION: 2`, legacy page numbers with `count` otherwise) rendered to dicts under the
merchant lock. Detail endpoints (`/<resource>/<key>/`) render one record the same way, a bad
record's flaw included (flaws.py).

Filters are those of the doc, per resource: `updated_start/_end` on subscriptions, orders and
customers (over their `last_updated`), `order_updated_start/_end` on items; a parameter a
resource does not know is ignored, not refused, as Django-filter does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import render
from .clock import parse_day, parse_local
from .faults import CursorGuard, FaultInjector
from .merchant import Merchant
from .pagination import Cursor, Match, cursor_page, number_page
from .sortedkeys import SortedKeys, key_row, make_key

DEFAULT_PAGE_SIZE = 10
MAX_PAGE_SIZE = 100
_FAR = 1 << 40  # beyond any local-seconds value


class BadRequest(Exception):
    def __init__(self, body: dict[str, Any], status: int = 400) -> None:
        super().__init__(str(body))
        self.body = body
        self.status = status


@dataclass
class Query:
    index: SortedKeys
    lo: int
    hi: int
    match: Match
    render: Callable[[Merchant, int], dict[str, Any]]


async def apply_faults(injector: FaultInjector) -> Response | None:
    decision = injector.decide()
    if decision.status is not None:
        body = {"detail": f"Sandbox injected fault ({decision.status})."}
        return JSONResponse(body, status_code=decision.status, headers=decision.headers)
    if decision.delay:
        await asyncio.sleep(decision.delay)
    return None


def _window(params: Any, prefix: str) -> tuple[int, int]:
    """`<prefix>_start/_end` (inclusive, naive local) -> local-seconds [start, end + 1)."""
    lo, hi = 0, _FAR
    for name, is_end in ((f"{prefix}_start", False), (f"{prefix}_end", True)):
        value = params.get(name)
        if value is None:
            continue
        try:
            seconds = parse_local(value)
        except ValueError:
            raise BadRequest({name: ["Enter a valid date/time."]}) from None
        if is_end:
            hi = seconds + 1
        else:
            lo = seconds
    return lo, hi


def _day_window(params: Any, prefix: str) -> tuple[int, int] | None:
    start, end = params.get(f"{prefix}_start"), params.get(f"{prefix}_end")
    if start is None and end is None:
        return None
    try:
        return (parse_day(start) if start else -(10**9), parse_day(end) if end else 10**9)
    except ValueError:
        raise BadRequest({f"{prefix}_start": ["Enter a valid date."]}) from None


def _combine(*preds: Match) -> Match:
    active = [p for p in preds if p is not None]
    if not active:
        return None
    if len(active) == 1:
        return active[0]
    return lambda key: all(p(key) for p in active)


def _created_match(m: Merchant, params: Any, created: list[int]) -> Match:
    lo, hi = _window(params, "created")
    if (lo, hi) == (0, _FAR):
        return None
    local = m.clock.local
    return lambda key: lo <= local(created[key_row(key)]) < hi


def _subset(m: Merchant, rows: list[int], updated: list[int]) -> SortedKeys:
    return SortedKeys(make_key(m.clock.local(updated[r]), r) for r in rows)


def subscriptions_query(m: Merchant, params: Any) -> Query:
    c = m.cols
    lo, hi = _window(params, "updated")
    index = m.idx_subs
    if params.get("customer") is not None:
        try:
            rows = c.c_subs[m.customer_row(params["customer"])]
        except KeyError:
            rows = []
        index = _subset(m, rows, c.s_updated)
    live_match: Match = None
    if params.get("live") is not None:
        want = params["live"].lower() in ("true", "1")

        def live_match(key: int) -> bool:
            return bool(c.s_live[key_row(key)]) == want

    match = _combine(_created_match(m, params, c.s_created), live_match)
    return Query(index, make_key(lo, 0), make_key(hi, 0), match, render.render_subscription)


def customers_query(m: Merchant, params: Any) -> Query:
    lo, hi = _window(params, "updated")
    match = _created_match(m, params, m.cols.c_created)
    return Query(m.idx_customers, make_key(lo, 0), make_key(hi, 0), match, render.render_customer)


def _order_filters(m: Merchant, params: Any) -> tuple[SortedKeys, Match]:
    c = m.cols
    index = m.idx_orders
    preds: list[Match] = [_created_match(m, params, c.o_created)]
    if params.get("customer") is not None or params.get("subscription") is not None:
        rows: list[int] = []
        try:
            if params.get("customer") is not None:
                rows = list(c.c_orders[m.customer_row(params["customer"])])
            if params.get("subscription") is not None:
                sub = m.sub_row(params["subscription"])
                rows = [o for o in (rows or c.c_orders[c.s_customer[sub]]) if c.o_sub[o] == sub]
        except KeyError:
            rows = []
        index = _subset(m, [r for r in rows if not c.o_deleted[r]], c.o_updated)
    if params.get("status") is not None:
        try:
            statuses = {int(s) for s in params["status"].split(",")}
        except ValueError:
            raise BadRequest({"status": ["Enter a whole number."]}) from None
        preds.append(lambda key: c.o_status[key_row(key)] in statuses)
    days = _day_window(params, "place")
    if days is not None:
        d0, d1 = days
        preds.append(lambda key: d0 <= c.o_place[key_row(key)] <= d1)
    return index, _combine(*preds)


def orders_query(m: Merchant, params: Any) -> Query:
    lo, hi = _window(params, "updated")
    index, match = _order_filters(m, params)
    return Query(index, make_key(lo, 0), make_key(hi, 0), match, render.render_order)


def items_query(m: Merchant, params: Any) -> Query:
    # Items share their order's row and index, so the order index serves `order_updated_*`.
    # The doc names only `order` and `order_updated_start/_end` for items; like any Django-filter
    # API the list ignores every other parameter (`updated_*`, `created_*`, `status`, ...), so a
    # client that sends `updated_start` silently gets every item: the real, inconvenient answer.
    lo, hi = _window(params, "order_updated")
    index = m.idx_orders
    if params.get("order") is not None:
        try:
            index = _subset(m, [m.order_row(params["order"])], m.cols.o_updated)
        except KeyError:
            index = SortedKeys()
    return Query(index, make_key(lo, 0), make_key(hi, 0), None, render.render_item)


def products_query(m: Merchant, params: Any) -> Query:
    # Products have no incremental filter; order by primary key (row order).
    index = SortedKeys(range(len(m.cols.products)))
    return Query(index, 0, _FAR, None, lambda mm, row: render.render_product(mm, row))


def _page_size(params: Any) -> int:
    try:
        size = int(params.get("page_size", DEFAULT_PAGE_SIZE))
    except ValueError:
        return DEFAULT_PAGE_SIZE
    if size < 1:
        return DEFAULT_PAGE_SIZE
    return min(size, MAX_PAGE_SIZE)


def serve_list(m: Merchant, request: Request, build: Callable[[Merchant, Any], Query]) -> Response:
    params = request.query_params
    size = _page_size(params)
    with m.lock:
        try:
            q = build(m, params)
        except BadRequest as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        if request.headers.get("x-og-api-version") == "2":
            try:
                cursor = Cursor.decode(params["cursor"]) if "cursor" in params else None
            except ValueError:
                return JSONResponse({"detail": "Invalid cursor"}, status_code=404)
            page = cursor_page(q.index, q.lo, q.hi, q.match, cursor, size)
            results = [q.render(m, key_row(k)) for k in page.keys]
            return JSONResponse(
                {
                    "next": _link(request, "cursor", page.next.encode() if page.next else None),
                    "previous": _link(
                        request, "cursor", page.previous.encode() if page.previous else None
                    ),
                    "results": results,
                }
            )
        try:
            number = int(params.get("page", "1"))
        except ValueError:
            number = 0
        npage = number_page(q.index, q.lo, q.hi, q.match, number, size)
        if npage is None:
            return JSONResponse({"detail": "Invalid page."}, status_code=404)
        results = [q.render(m, key_row(k)) for k in npage.keys]
        return JSONResponse(
            {
                "count": npage.count,
                "next": _link(request, "page", str(number + 1) if npage.has_next else None),
                "previous": _link(request, "page", str(number - 1) if npage.has_previous else None),
                "results": results,
            }
        )


def _link(request: Request, param: str, value: str | None) -> str | None:
    if value is None:
        return None
    return str(request.url.include_query_params(**{param: value}))


def ordergroove_routes(
    m: Merchant,
    injector: FaultInjector,
    keys: set[str],
    limited_keys: set[str],
    cursors: CursorGuard | None = None,
) -> list[Route]:
    async def guard(request: Request) -> Response | None:
        faulted = await apply_faults(injector)
        if faulted is not None:
            return faulted
        key = request.headers.get("x-api-key")
        if key in limited_keys:
            return JSONResponse(
                {
                    "detail": "This API key lacks the Bulk Operations permission required "
                    "for list endpoints."
                },
                status_code=403,
            )
        if key not in keys:
            return JSONResponse({"detail": "Invalid or missing API key."}, status_code=401)
        return None

    def list_endpoint(build: Callable[[Merchant, Any], Query]) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            resource = request.url.path.rstrip("/").rsplit("/", 1)[-1]
            page = str(request.url)
            busy = cursors.enter(resource, page) if cursors is not None else None
            if busy is not None:
                detail = (
                    f"another request over {resource} is in progress: one cursor per object type"
                    if busy == 409
                    else "too many paginating requests at once (at most 5)"
                )
                return JSONResponse({"detail": detail}, status_code=busy)
            try:
                refused = await guard(request)
                if refused is not None:
                    return refused
                return serve_list(m, request, build)
            finally:
                if cursors is not None:
                    cursors.leave(resource, page)

        return endpoint

    def detail_endpoint(fetch: Callable[[str], dict[str, Any]]) -> Callable[..., Any]:
        async def endpoint(request: Request) -> Response:
            refused = await guard(request)
            if refused is not None:
                return refused
            try:
                return JSONResponse(fetch(request.path_params["key"]))
            except KeyError:
                return JSONResponse({"detail": "Not found."}, status_code=404)

        return endpoint

    return [
        Route("/subscriptions/", list_endpoint(subscriptions_query)),
        Route("/customers/", list_endpoint(customers_query)),
        Route("/orders/", list_endpoint(orders_query)),
        Route("/items/", list_endpoint(items_query)),
        Route("/products/", list_endpoint(products_query)),
        Route("/products/{key}/", detail_endpoint(m.product)),
        Route("/customers/{key}/", detail_endpoint(m.customer)),
        Route("/subscriptions/{key}/", detail_endpoint(m.subscription)),
        Route("/orders/{key}/", detail_endpoint(m.order)),
        Route("/items/{key}/", detail_endpoint(m.item)),
    ]
