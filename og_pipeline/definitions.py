"""The og_pipeline code location.

Ordergroove REST -> raw tables (hourly partitions) -> per-contact stats -> Ometria custom fields;
Ordergroove webhooks -> staging table -> sensor -> event processing -> Ometria custom events.
Each folder (ordergroove, contacts, ometria, webhooks) contributes its assets, checks, schedules
and sensors; the resources come from environment variables at run time.
"""

from __future__ import annotations

import dagster as dg

from og_pipeline.resources import PostgresResource

defs = dg.Definitions(
    resources={
        "postgres": PostgresResource(database_url=dg.EnvVar("OG_DATABASE_URL")),
    },
)
