"""The Twilio REST client skips requests' per-request environment lookups
only when the environment has nothing for it (no proxy, no CA bundle)."""

from __future__ import annotations

import pytest

from channels.twilio import make_client
from core.settings import Settings

SETTINGS = Settings(twilio_account_sid="AC" + "0" * 32, twilio_auth_token="token")


def _trusts_environment() -> bool:
    session = make_client(SETTINGS).http_client.session  # type: ignore[attr-defined]
    return bool(session.trust_env)


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    return monkeypatch


def test_nothing_in_the_environment_nothing_looked_up(bare_environment: pytest.MonkeyPatch) -> None:
    assert not _trusts_environment()


@pytest.mark.parametrize(
    ("name", "value"),
    [("HTTPS_PROXY", "http://proxy.internal:3128"), ("REQUESTS_CA_BUNDLE", "/etc/ssl/ours.pem")],
)
def test_a_proxy_or_ca_bundle_is_honoured(
    bare_environment: pytest.MonkeyPatch, name: str, value: str
) -> None:
    bare_environment.setenv(name, value)
    assert _trusts_environment()
