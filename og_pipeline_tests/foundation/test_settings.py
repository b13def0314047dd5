"""Configuration fails at load time, naming the variable; secrets never show."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from og_pipeline.settings import ConfigError, Settings, load_settings, require_start_date


def test_defaults_are_the_public_apis() -> None:
    settings = load_settings({})
    assert settings.ordergroove_api_url == "https://restapi.ordergroove.com"
    assert settings.ometria_api_url == "https://api.ometria.com"
    assert settings.database_url is None
    assert settings.ordergroove_timezone == "America/Chicago"
    assert not settings.uses_real_apis


def test_every_invalid_variable_is_named_in_one_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "OG_SYNC_START_DATE": "01/11/2026",
                "OMETRIA_API_URL": "api.ometria.com",
                "OG_DATABASE_URL": "mysql://x",
                "OG_ORDERGROOVE_TIMEZONE": "Central",
            }
        )
    message = str(caught.value)
    for variable in (
        "OG_SYNC_START_DATE",
        "OMETRIA_API_URL",
        "OG_DATABASE_URL",
        "OG_ORDERGROOVE_TIMEZONE",
    ):
        assert variable in message


def test_start_date_in_the_future_is_refused() -> None:
    with pytest.raises(ConfigError, match="OG_SYNC_START_DATE: must not be in the future"):
        load_settings({"OG_SYNC_START_DATE": "2999-01-01"})


def test_missing_start_date_says_what_to_set() -> None:
    with pytest.raises(ConfigError, match="OG_SYNC_START_DATE is not set.*YYYY-MM-DD"):
        require_start_date(load_settings({}))
    assert require_start_date(load_settings({"OG_SYNC_START_DATE": "2026-01-31"})) == date(
        2026, 1, 31
    )


def test_empty_variable_counts_as_unset() -> None:
    settings = load_settings({"OG_DATABASE_URL": "", "OG_SYNC_START_DATE": " "})
    assert settings.database_url is None and settings.sync_start_date is None


def test_webhook_keys_accept_a_comma_separated_rotation_list() -> None:
    settings = load_settings({"ORDERGROOVE_WEBHOOK_KEY": "old-key, new-key"})
    assert settings.webhook_keys == ["old-key", "new-key"]


def test_secrets_do_not_appear_in_the_settings_repr() -> None:
    settings = load_settings(
        {"ORDERGROOVE_API_KEY": "og-secret-123", "OMETRIA_API_KEY": "om-secret-456"}
    )
    assert "og-secret-123" not in repr(settings) and "om-secret-456" not in repr(settings)
    assert settings.uses_real_apis


VARIABLES = sorted(field.alias for field in Settings.model_fields.values() if field.alias)
MARK = "\u2603"  # in every value given: no message of ours contains it


@given(
    st.dictionaries(
        st.sampled_from(VARIABLES),
        st.text(max_size=40).map(lambda text: MARK + text)
        | st.integers(-5, 70000).map(lambda n: f"{n}{MARK}"),
        max_size=6,
    )
)
def test_any_values_load_or_fail_naming_only_their_variables_and_quoting_none(
    environ: dict[str, str],
) -> None:
    """Whatever the environment holds, loading either succeeds or raises ConfigError naming
    variables that were set, and the message repeats no value given (keys, URLs with tokens or
    passwords, addresses)."""
    try:
        load_settings(environ)
    except ConfigError as exc:
        message = str(exc)
        assert MARK not in message
        named = [name for name in VARIABLES if name in message]
        assert named and set(named) <= set(environ)
