"""Postgres for og-pipeline's own tables: connections, the embedded server, migrations.

No Dagster imports here: the CLI, the webhook receiver, the tests and the Dagster resources all
use these plain functions.
"""
