"""`og-pipeline sandbox`: serve the stand-in APIs until Ctrl-C.

The main `og-pipeline` group attaches the `sandbox` command object defined here; it builds a
MerchantSpec from the options, then calls `server.serve`, which prints the URLs and keys once
the port answers and optionally streams signed webhooks to a receiver.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from .columns import MerchantSpec
from .faults import FaultSpec
from .state import SandboxState


def _announce(state: SandboxState, base: str) -> None:
    counts = state.merchant.counts()
    keys = state.keys
    lines = [
        (
            f"og-pipeline sandbox on {base}  ({counts['subscriptions']} subscriptions, "
            f"{counts['customers']} customers, {counts['orders']} orders)"
        ),
        f"  ORDERGROOVE_API_URL={base}/ordergroove",
        (
            f"  ORDERGROOVE_API_KEY={keys['ordergroove']}   "
            f"(without Bulk Operations: {keys['ordergroove_limited']})"
        ),
        f"  ORDERGROOVE_WEBHOOK_KEY={keys['webhook']}",
        f"  OMETRIA_API_URL={base}/ometria",
        f"  OMETRIA_API_KEY={keys['ometria']}",
        (
            f"  inspect: {base}/_sandbox/info, {base}/_sandbox/ometria/contacts, "
            f"{base}/_sandbox/ground_truth, {base}/_sandbox/bad_records"
        ),
        "Ctrl-C to stop.",
    ]
    click.echo("\n".join(lines))


def _parse_now(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"not an ISO-8601 date/time: {text!r}", param_hint="--now"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


@click.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8700, show_default=True, type=int)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--subscriptions", default=1000, show_default=True, type=int)
@click.option(
    "--start-date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="First day of the generated history (UTC). Default: 30 days ago.",
)
@click.option(
    "--now",
    "now_text",
    default=None,
    help="The merchant's 'now' (ISO-8601; no offset = UTC). Default: the wall clock. Fix it, "
    "with --seed and --start-date, to regenerate the same merchant on every start.",
)
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=float,
    help="Share of requests to either API answered with an injected 429/423/5xx.",
)
@click.option(
    "--og-fault-rate", default=None, type=float, help="Overrides --fault-rate for Ordergroove."
)
@click.option(
    "--ometria-fault-rate", default=None, type=float, help="Overrides --fault-rate for Ometria."
)
@click.option(
    "--slow-rate",
    default=0.0,
    show_default=True,
    type=float,
    help="Share of requests to either API delayed by --slow-seconds.",
)
@click.option("--slow-seconds", default=2.0, show_default=True, type=float)
@click.option("--fault-seed", default=0, show_default=True, type=int)
@click.option(
    "--ometria-rate-limit",
    default=8.0,
    show_default=True,
    type=float,
    help="Ometria push requests per second per key.",
)
@click.option(
    "--requests-per-minute",
    default=None,
    type=click.FloatRange(min=1),
    help="Ordergroove's rate limit, enforced: over this many requests in any 60 s (sliding "
    "window), 429 with Retry-After (Ordergroove allows 6,000 per IP). Default: no limit.",
)
@click.option(
    "--bad-record-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0.0, 1.0),
    help="Share of REST records (per type, seeded) served malformed: a null or missing key, a "
    "missing or unparseable version timestamp, or a type the docs do not allow. Listed at "
    "/_sandbox/bad_records; webhooks stay well-formed.",
)
@click.option("--webhook-url", default=None, help="Receiver to send signed webhooks to.")
@click.option(
    "--webhook-rate",
    default=1.0,
    show_default=True,
    type=float,
    help="Webhook events per second (with --webhook-url).",
)
def sandbox(
    host: str,
    port: int,
    seed: int,
    subscriptions: int,
    start_date: datetime | None,
    now_text: str | None,
    fault_rate: float,
    og_fault_rate: float | None,
    ometria_fault_rate: float | None,
    slow_rate: float,
    slow_seconds: float,
    fault_seed: int,
    ometria_rate_limit: float,
    requests_per_minute: float | None,
    bad_record_rate: float,
    webhook_url: str | None,
    webhook_rate: float,
) -> None:
    """Local stand-ins for the Ordergroove and Ometria APIs, with generated data."""
    now = _parse_now(now_text) if now_text else datetime.now(UTC).replace(microsecond=0)
    start = start_date.replace(tzinfo=UTC) if start_date else now - timedelta(days=30)
    click.echo(f"generating {subscriptions} subscriptions (seed {seed}) ...")
    spec = MerchantSpec(
        subscriptions=subscriptions,
        seed=seed,
        start=start,
        now=now,
        bad_record_share=bad_record_rate,
    )
    faults = {
        "ordergroove": FaultSpec(
            rate=fault_rate if og_fault_rate is None else og_fault_rate,
            seed=fault_seed,
            slow_rate=slow_rate,
            slow_seconds=slow_seconds,
            requests_per_minute=requests_per_minute,
        ),
        # Ometria documents no 423; keep its injected statuses to what it really answers.
        "ometria": FaultSpec(
            rate=fault_rate if ometria_fault_rate is None else ometria_fault_rate,
            statuses=(429, 500, 502, 503),
            seed=fault_seed + 1,
            slow_rate=slow_rate,
            slow_seconds=slow_seconds,
        ),
    }
    # The server only when serving: it loads uvicorn and starlette, which every other
    # og-pipeline command (they all import this command) can do without.
    from .server import serve

    try:
        serve(
            spec,
            host=host,
            port=port,
            faults=faults,
            webhook_url=webhook_url,
            webhook_rate=webhook_rate,
            webhook_seed=seed,
            on_ready=_announce,
            ometria_rate_limit=ometria_rate_limit,
        )
    except KeyboardInterrupt:
        pass
