"""og-pipeline's configuration, read from environment variables and validated at load time.

Every setting is named by its variable, so an invalid value fails with that name (a bad
``OG_SYNC_START_DATE`` says so, not "validation error for Settings"). Secrets are ``SecretStr``
and never printed. The Dagster resources read the same variables through ``dg.EnvVar``; this
module serves what must be known before any run (partition start, database, ports) and the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from og_pipeline import defaults


class ConfigError(ValueError):
    """A setting is missing or invalid; the message names the environment variable."""


class Settings(BaseModel):
    model_config = ConfigDict(populate_by_name=False, extra="ignore", frozen=True)

    ordergroove_api_key: SecretStr | None = Field(None, alias="ORDERGROOVE_API_KEY")
    ordergroove_api_url: str = Field(defaults.ORDERGROOVE_API_URL, alias="ORDERGROOVE_API_URL")
    ordergroove_webhook_key: SecretStr | None = Field(None, alias="ORDERGROOVE_WEBHOOK_KEY")
    ometria_api_key: SecretStr | None = Field(None, alias="OMETRIA_API_KEY")
    ometria_api_url: str = Field(defaults.OMETRIA_API_URL, alias="OMETRIA_API_URL")
    sync_start_date: date | None = Field(None, alias="OG_SYNC_START_DATE")
    database_url: str | None = Field(None, alias="OG_DATABASE_URL")
    dagster_database_url: str | None = Field(None, alias="OG_DAGSTER_DATABASE_URL")
    ordergroove_timezone: str = Field(
        defaults.ORDERGROOVE_TIMEZONE, alias="OG_ORDERGROOVE_TIMEZONE"
    )
    webhook_max_body_bytes: int = Field(1024 * 1024, ge=1024, alias="OG_WEBHOOK_MAX_BODY_BYTES")
    # Off by default: Ordergroove's retries may reuse the original `ts` for hours.
    webhook_max_age_seconds: int | None = Field(None, gt=0, alias="OG_WEBHOOK_MAX_AGE_SECONDS")
    # Processed bodies hold personal data; custom events read them for 3 days.
    webhook_retention_days: int = Field(
        defaults.WEBHOOK_RETENTION_DAYS, ge=4, alias="OG_WEBHOOK_RETENTION_DAYS"
    )
    sync_overlap_minutes: int = Field(
        defaults.SYNC_OVERLAP_MINUTES, ge=0, le=24 * 60, alias="OG_SYNC_OVERLAP_MINUTES"
    )
    # Above this share of a window's records unreadable, the API changed: the push is blocked.
    sync_max_rejected_share: float = Field(
        defaults.SYNC_MAX_REJECTED_SHARE, ge=0, le=1, alias="OG_SYNC_MAX_REJECTED_SHARE"
    )
    ordergroove_requests_per_minute: float = Field(
        defaults.ORDERGROOVE_REQUESTS_PER_MINUTE,
        gt=0,
        le=60_000,
        alias="OG_ORDERGROOVE_REQUESTS_PER_MINUTE",
    )
    sync_window_days: int = Field(defaults.SYNC_WINDOW_DAYS, ge=1, alias="OG_SYNC_WINDOW_DAYS")
    sync_slow_page_seconds: float = Field(
        defaults.SYNC_SLOW_PAGE_SECONDS, gt=0, alias="OG_SYNC_SLOW_PAGE_SECONDS"
    )
    ometria_requests_per_second: float = Field(
        defaults.OMETRIA_REQUESTS_PER_SECOND, gt=0, le=100, alias="OG_OMETRIA_REQUESTS_PER_SECOND"
    )
    ometria_rate_margin_seconds: float = Field(
        defaults.OMETRIA_RATE_MARGIN_SECONDS, ge=0, le=1, alias="OG_OMETRIA_RATE_MARGIN_SECONDS"
    )
    ometria_field_active_subscriptions: str = Field(
        defaults.FIELD_ACTIVE_SUBSCRIPTIONS,
        min_length=1,
        alias="OG_OMETRIA_FIELD_ACTIVE_SUBSCRIPTIONS",
    )
    ometria_field_total_subscriptions: str = Field(
        defaults.FIELD_TOTAL_SUBSCRIPTIONS,
        min_length=1,
        alias="OG_OMETRIA_FIELD_TOTAL_SUBSCRIPTIONS",
    )
    ometria_field_subscription_status: str = Field(
        defaults.FIELD_SUBSCRIPTION_STATUS,
        min_length=1,
        alias="OG_OMETRIA_FIELD_SUBSCRIPTION_STATUS",
    )
    ometria_field_next_order_date: str = Field(
        defaults.FIELD_NEXT_ORDER_DATE, min_length=1, alias="OG_OMETRIA_FIELD_NEXT_ORDER_DATE"
    )

    # Alerts (og_pipeline/alerts.py): a Slack-compatible incoming webhook and/or e-mail.
    alert_webhook_url: SecretStr | None = Field(None, alias="OG_ALERT_WEBHOOK_URL")
    alert_email_to: str = Field("", alias="OG_ALERT_EMAIL_TO")
    alert_email_from: str = Field("og-pipeline@localhost", alias="OG_ALERT_EMAIL_FROM")
    alert_smtp_host: str = Field("localhost", alias="OG_ALERT_SMTP_HOST")
    alert_smtp_port: int = Field(25, gt=0, lt=65536, alias="OG_ALERT_SMTP_PORT")
    dagster_ui_url: str = Field("http://127.0.0.1:3000", alias="OG_DAGSTER_UI_URL")

    @field_validator("ordergroove_api_url", "ometria_api_url", "dagster_ui_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s):// URL")
        return value.rstrip("/")

    @field_validator("alert_webhook_url")
    @classmethod
    def _webhook_url(cls, value: SecretStr | None) -> SecretStr | None:
        # The URL holds the webhook's token: the message never repeats it.
        if value is not None and not value.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("must be an http(s):// URL")
        return value

    @field_validator("database_url", "dagster_database_url")
    @classmethod
    def _postgres_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("postgresql://", "postgres://", "postgresql+")):
            raise ValueError("must be a postgresql:// URL")
        return value or None

    @field_validator("sync_start_date", mode="before")
    @classmethod
    def _iso_date(cls, value: object) -> object:
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                raise ValueError("must be a date as YYYY-MM-DD") from None
        return value

    @field_validator("sync_start_date")
    @classmethod
    def _not_in_future(cls, value: date | None) -> date | None:
        if value and value > datetime.now(UTC).date():
            raise ValueError("must not be in the future")
        return value

    @field_validator("ordergroove_timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("must be an IANA time zone such as America/Chicago") from None
        return value

    @property
    def webhook_keys(self) -> list[str]:
        """The webhook Verification Keys; several (comma-separated) during a rotation."""
        if self.ordergroove_webhook_key is None:
            return []
        raw = self.ordergroove_webhook_key.get_secret_value()
        return [key.strip() for key in raw.split(",") if key.strip()]

    @property
    def uses_real_apis(self) -> bool:
        return self.ordergroove_api_key is not None or self.ometria_api_key is not None


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings; a ConfigError names every variable at fault."""
    env = os.environ if environ is None else environ
    names = {field.alias for field in Settings.model_fields.values() if field.alias}
    # An empty variable means unset, as in most shells' `VAR= command`.
    values = {name: env[name] for name in names if env.get(name, "").strip() != ""}
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            variable = str(error["loc"][0]) if error["loc"] else "configuration"
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{variable}: {message}")
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None


def require_start_date(settings: Settings) -> date:
    if settings.sync_start_date is None:
        raise ConfigError(
            "OG_SYNC_START_DATE is not set: set it to the first day to sync, as YYYY-MM-DD "
            "(the first sync backfills from there)"
        )
    return settings.sync_start_date
