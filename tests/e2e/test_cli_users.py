"""`telemed users add|list|token`, run as a user runs them."""

from __future__ import annotations

import json

from tests.e2e.test_cli import Cli, cli, demo, one_line_failure

__all__ = ["cli", "demo"]


def test_users_add_list_and_token(demo: Cli) -> None:
    made = demo(
        "users", "add", "--email", "Ana@Clinic.test", "--role", "doctor", "--practitioner", "Ruiz"
    )
    assert made.returncode == 0, made.stderr
    assert "user 1 created: ana@clinic.test (doctor, practitioner" in made.stdout
    assert "password: " in made.stdout  # none given: one is made up and shown once
    staff = demo(
        "users",
        "add",
        "--email",
        "desk@clinic.test",
        "--role",
        "staff",
        "--password",
        "long enough pw",
    )
    assert staff.returncode == 0 and "password" not in staff.stdout
    listed = json.loads(demo("users", "list", "--json").stdout)
    assert [(u["email"], u["role"]) for u in listed] == [
        ("ana@clinic.test", "doctor"),
        ("desk@clinic.test", "staff"),
    ]
    token = demo("users", "token", "--email", "desk@clinic.test")
    assert token.returncode == 0 and token.stdout.startswith("tm_")


def test_users_add_mistakes_are_one_line(demo: Cli) -> None:
    for args, reason in [
        (
            ("--email", "x@clinic.test", "--role", "owner"),
            "role must be one of admin, staff, doctor",
        ),
        (("--email", "nope", "--role", "staff"), "is not an e-mail address"),
        (("--email", "x@clinic.test", "--role", "staff", "--password", "short"), "at least 10"),
        (
            ("--email", "x@clinic.test", "--role", "doctor", "--practitioner", "Nobody"),
            "no practitioner",
        ),
    ]:
        result = demo("users", "add", *args)
        assert result.returncode == 1
        assert reason in one_line_failure(result)
    assert demo("users", "add", "--email", "x@clinic.test").returncode == 2
    unknown = demo("users", "token", "--email", "ghost@clinic.test")
    assert unknown.returncode == 1 and "no user with e-mail" in one_line_failure(unknown)
