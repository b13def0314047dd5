"""``og-pipeline records``: what the sync and the webhooks could not read, and why."""

from __future__ import annotations

import json

import click

from og_pipeline.settings import load_settings

RESOURCES = ("subscriptions", "customers", "orders", "items", "products")


@click.group()
def records() -> None:
    """Ordergroove records as og-pipeline stored them."""


@records.command()
@click.option("--resource", type=click.Choice(RESOURCES), help="Only this record type.")
@click.option(
    "--limit",
    default=50,
    show_default=True,
    type=click.IntRange(min=1),
    help="At most this many, most recently seen first.",
)
@click.option(
    "--show-record", is_flag=True, help="Also print each record as kept (personal data removed)."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def rejected(resource: str | None, limit: int, show_record: bool, as_json: bool) -> None:
    """List the records set aside as unreadable, with their reasons.

    A record lands here when it cannot be read as Ordergroove documents it (a null or missing
    id, a type the reference does not allow, a timestamp that does not parse); the rest of its
    window is stored. It leaves by itself once it reads correctly (the next sync that meets it,
    or after a fix in Ordergroove). Personal data (e-mail, names, phone, addresses) is removed
    before a record is kept, so nothing here identifies a person.
    """
    from og_pipeline.db.connection import connect
    from og_pipeline.http_common import redact
    from og_pipeline.ordergroove.rejected import counts, listing
    from og_pipeline.runtime import open_databases, project_root, state_dir

    with (
        open_databases(load_settings(), state_dir(project_root())) as databases,
        connect(databases.og_url) as conn,
    ):
        per_resource = counts(conn)
        rows = listing(conn, resource=resource, limit=limit)
    for row in rows:
        # An id is no personal field, but some merchants use e-mail addresses as customer ids.
        record_id = redact(row.record_id) if row.record_id is not None else None
        if as_json:
            out = {
                "resource": row.resource,
                "id": record_id,
                "reason": row.reason,
                "source": row.source,
                "first_seen": row.first_seen.isoformat(),
                "last_seen": row.last_seen.isoformat(),
                "times_seen": row.times_seen,
            }
            if show_record:
                out["record"] = row.record
            click.echo(json.dumps(out))
            continue
        click.echo(
            f"{row.last_seen:%Y-%m-%d %H:%M} UTC  {row.resource:<13} "
            f"{record_id or '(no id)':<34} seen {row.times_seen}x since "
            f"{row.first_seen:%Y-%m-%d %H:%M}  {row.reason}"
        )
        if show_record:
            click.echo(f"    {json.dumps(row.record, sort_keys=True)}")
    if not as_json:
        total = sum(per_resource.values())
        summary = ", ".join(f"{name} {count}" for name, count in per_resource.items()) or "none"
        shown = f" (showing {len(rows)})" if len(rows) < total else ""
        click.echo(f"{total} record(s) set aside{shown}: {summary}")
