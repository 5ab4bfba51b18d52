from __future__ import annotations

from datetime import timedelta

import pytest

from core.settings import Settings, SettingsError, load_settings, parse_offsets


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("TELEMED_DATABASE_URL", "nonsense://x"),
        ("TELEMED_PUBLIC_URL", "ftp://clinic"),
        ("TELEMED_CLINIC_TIMEZONE", "Mars/Olympus"),
        ("TELEMED_REMINDER_OFFSETS", "72h,soon"),
        ("TELEMED_SCHEDULER_TICK_SECONDS", "-1"),
        ("TELEMED_VIDEO_PROVIDER", "zoom"),
    ],
)
def test_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert name in str(err.value)
    assert "\n" not in str(err.value)


def test_defaults_follow_the_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("TELEMED_DATABASE_URL", "TELEMED_PUBLIC_URL", "TELEMED_CLINIC_TIMEZONE"):
        monkeypatch.delenv(key, raising=False)
    settings = Settings()
    assert settings.database_url == "sqlite:///var/telemed.db"
    assert settings.public_url == "http://127.0.0.1:8000"
    assert settings.reminder_offset_list == (
        timedelta(hours=72),
        timedelta(hours=24),
        timedelta(hours=2),
    )
    assert settings.scheduler_tick_seconds == 15
    assert not settings.twilio_enabled and not settings.telegram_enabled


def test_plain_postgres_url_uses_psycopg() -> None:
    assert (
        Settings(database_url="postgresql://u@h/db").database_url == "postgresql+psycopg://u@h/db"
    )


def test_offsets() -> None:
    assert parse_offsets("2h, 30m,3d") == (
        timedelta(days=3),
        timedelta(hours=2),
        timedelta(minutes=30),
    )
    with pytest.raises(ValueError):
        parse_offsets("0h")
