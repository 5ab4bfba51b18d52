from __future__ import annotations

import pytest

from core.phones import InvalidPhone, normalize_address, to_e164


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 (555) 010-0000", "US", "+15550100000"),
        ("whatsapp:+447700900123", "US", "+447700900123"),
        ("(202) 555-0143", "US", "+12025550143"),
        ("0044 7700 900123", "US", "+447700900123"),
        ("612 34 56 78", "ES", "+34612345678"),
        ("+34 612-345-678", "US", "+34612345678"),
    ],
)
def test_e164(raw: str, region: str, expected: str) -> None:
    assert to_e164(raw, region) == expected


@pytest.mark.parametrize("raw", ["", "hello", "12", "+999999999999999999"])
def test_invalid(raw: str) -> None:
    with pytest.raises(InvalidPhone):
        to_e164(raw)


def test_telegram_ids_are_kept() -> None:
    assert normalize_address("telegram", " 123456789 ") == "123456789"
    assert normalize_address("sms", "+1 555 010 0000") == "+15550100000"
