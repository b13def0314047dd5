"""One place for each default of og-pipeline's settings (the README's "Configuration" table).

Plain constants with no imports: the settings (environment variables), the Dagster resources and
the API clients all take their defaults from here, so a default cannot differ between them.
"""

from __future__ import annotations

ORDERGROOVE_API_URL = "https://restapi.ordergroove.com"
OMETRIA_API_URL = "https://api.ometria.com"
# The zone of Ordergroove's offset-less REST timestamps (OG_ORDERGROOVE_TIMEZONE).
ORDERGROOVE_TIMEZONE = "America/Chicago"
SYNC_OVERLAP_MINUTES = 5
SYNC_MAX_REJECTED_SHARE = 0.01
# Ordergroove's documented limit: 6,000 requests per minute per IP, shared by every walk.
ORDERGROOVE_REQUESTS_PER_MINUTE = 6000.0
# A long range is walked in windows of this many days (Ordergroove suggests month windows for a
# large initial load); a page slower than SYNC_SLOW_PAGE_SECONDS halves the rest of that walk's.
SYNC_WINDOW_DAYS = 31
SYNC_SLOW_PAGE_SECONDS = 20.0
# Ometria's documented limit of push requests per second.
OMETRIA_REQUESTS_PER_SECOND = 8.0
# Seconds added to each 1-s window of that limit for clock and network jitter: 20 ms holds 98 %
# of the rate (10 ms met 429s on a loaded 2-core machine; 50 ms held 95 %). A 429 is retried
# after its Retry-After and the margin stays as set: widening it on each 429 took it to its
# ceiling after a few and slowed the whole push (bench/README.md, the peer benchmark).
OMETRIA_RATE_MARGIN_SECONDS = 0.02
WEBHOOK_RETENTION_DAYS = 30

# The Ometria contact custom field IDs (OG_OMETRIA_FIELD_*).
FIELD_ACTIVE_SUBSCRIPTIONS = "ordergroove_active_subscriptions"
FIELD_TOTAL_SUBSCRIPTIONS = "ordergroove_total_subscriptions"
FIELD_SUBSCRIPTION_STATUS = "ordergroove_subscription_status"
FIELD_NEXT_ORDER_DATE = "ordergroove_next_order_date"
