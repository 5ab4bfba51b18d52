"""Dashboard users and logins: passwords, the login rate limit, sessions,
CSRF, redirects, the append-only audit log, and `telemed users`."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from core import audit, users
from core.clock import FixedClock
from core.db import Database
from core.models import AuditEntry, User, UserSession
from tests.staff import PASSWORD, StaffClient, StaffSite


@pytest.fixture
def site(db: Database, clock: FixedClock) -> StaffSite:
    return StaffSite.open(db, clock)


def _login_form(client: object) -> str:
    page = client.get("/login")  # type: ignore[attr-defined]
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def _try(client: object, email: str, password: str) -> object:
    token = _login_form(client)
    return client.post(  # type: ignore[attr-defined]
        "/login", data={"email": email, "password": password, "csrf_token": token}, csrf=False
    )


def test_passwords_are_argon2_hashes_never_the_password(site: StaffSite) -> None:
    with site.db.transaction() as session:
        user = session.scalar(select(User).where(User.email == "staff@clinic.test"))
        assert user is not None
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash


def test_create_user_rules(site: StaffSite) -> None:
    now = site.clock.now()
    with site.db.transaction() as session:
        for kwargs, why in [
            ({"email": "not-an-email", "role": "staff"}, "not an e-mail"),
            ({"email": "x@clinic.test", "role": "owner"}, "role must be"),
            ({"email": "STAFF@clinic.test", "role": "staff"}, "already exists"),
            ({"email": "d@clinic.test", "role": "doctor"}, "needs --practitioner"),
            ({"email": "d@clinic.test", "role": "doctor", "practitioner": "Dr"}, "practitioners"),
        ]:
            with pytest.raises(users.UserError, match=why):
                users.create_user(session, password=PASSWORD, now=now, **kwargs)  # type: ignore[arg-type]
        with pytest.raises(users.UserError, match="at least 10"):
            users.create_user(
                session, email="s@clinic.test", role="staff", password="short", now=now
            )
        doctor = users.create_user(
            session,
            email=" Chen@Clinic.Test ",
            role="doctor",
            password=PASSWORD,
            practitioner="Chen",
            now=now,
        )
        assert doctor.email == "chen@clinic.test" and doctor.practitioner_id is not None
        assert doctor.name == "Dr David Chen"


def test_wrong_password_then_rate_limit(site: StaffSite) -> None:
    client = site.anonymous()
    for _ in range(users.LOGIN_FAILS_PER_EMAIL):
        answer = _try(client, "ruiz@clinic.test", "not the password")
        assert answer.status_code == 401  # type: ignore[attr-defined]
        assert "do not match" in answer.text  # type: ignore[attr-defined]
    # Locked for this e-mail now, even with the right password...
    answer = _try(client, "ruiz@clinic.test", PASSWORD)
    assert answer.status_code == 429  # type: ignore[attr-defined]
    # ...while other users log in as usual.
    assert _try(client, "okafor@clinic.test", PASSWORD).status_code == 303  # type: ignore[attr-defined]
    # The window passes.
    site.clock.advance(users.LOGIN_WINDOW + timedelta(seconds=1))
    assert _try(client, "ruiz@clinic.test", PASSWORD).status_code == 303  # type: ignore[attr-defined]


def test_unknown_email_answers_like_a_wrong_password(site: StaffSite) -> None:
    answer = _try(site.anonymous(), "nobody@clinic.test", PASSWORD)
    assert answer.status_code == 401  # type: ignore[attr-defined]
    assert "do not match" in answer.text  # type: ignore[attr-defined]


def test_login_form_needs_its_csrf_cookie(site: StaffSite) -> None:
    client = site.anonymous()
    answer = client.post(
        "/login",
        data={"email": "staff@clinic.test", "password": PASSWORD, "csrf_token": "x"},
        csrf=False,
    )
    assert answer.status_code == 403
    assert "expired" in answer.text


def test_session_cookie_flags_and_expiry(db: Database, clock: FixedClock) -> None:
    site = StaffSite.open(db, clock, public_url="https://clinic.example.com", session_hours=1)
    client = StaffClient(site.app, base_url="https://testserver", follow_redirects=False)
    done = _try(client, "staff@clinic.test", PASSWORD)
    assert done.status_code == 303  # type: ignore[attr-defined]
    cookie = next(
        c
        for c in done.headers.get_list("set-cookie")
        if c.startswith("telemed_session=")  # type: ignore[attr-defined]
    )
    assert "telemed_session=" in cookie
    for flag in ("HttpOnly", "Secure", "SameSite=lax"):
        assert flag.lower() in cookie.lower()
    with db.transaction() as session:
        stored = session.scalars(select(UserSession.token_hash)).all()
    token = re.search(r"telemed_session=([^;]+)", cookie)
    assert token is not None and token.group(1) not in stored  # only the hash is kept
    client.cookies.set("telemed_session", token.group(1))
    assert client.get("/dashboard").status_code == 200
    clock.advance(timedelta(hours=1, seconds=1))
    assert client.get("/dashboard").status_code == 303


def test_disabled_user_is_logged_out(site: StaffSite) -> None:
    client = site.client("staff@clinic.test")
    with site.db.transaction() as session:
        session.execute(text("UPDATE users SET active = false WHERE email = 'staff@clinic.test'"))
    assert client.get("/dashboard").status_code == 303


def test_redirects_stay_on_this_site(site: StaffSite) -> None:
    client = site.anonymous()
    answer = client.get("/dashboard?day=2026-04-14")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/login?next=%2Fdashboard%3Fday%3D2026-04-14"
    for hostile in ("https://evil.example/", "//evil.example/x", "javascript:alert(1)"):
        token = _login_form(client)
        done = client.post(
            "/login",
            data={
                "email": "staff@clinic.test",
                "password": PASSWORD,
                "csrf_token": token,
                "next": hostile,
            },
            csrf=False,
        )
        assert done.headers["location"] == "/dashboard"


def test_htmx_requests_get_hx_redirect(site: StaffSite) -> None:
    answer = site.anonymous().get("/dashboard", headers={"HX-Request": "true"})
    assert answer.status_code == 401
    assert answer.headers["HX-Redirect"].startswith("/login?next=")


def test_logout_needs_csrf_and_ends_the_session(site: StaffSite) -> None:
    client = site.client("admin@clinic.test")
    assert client.post("/logout", csrf=False).status_code == 403
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 403
    assert client.post("/logout").status_code == 303
    assert client.get("/dashboard").status_code == 303


def test_login_and_logout_are_audited_and_the_log_is_append_only(site: StaffSite) -> None:
    client = site.client("admin@clinic.test")
    client.post("/logout")
    with site.db.transaction() as session:
        actions = [
            e.action
            for e in audit.entries(
                session, user_id=site.user_ids["admin@clinic.test"], entity="user"
            )
        ]  # (logging in also opened the day view, audited as entity "schedule")
    assert actions == ["logout", "login"]
    for statement in ("UPDATE audit_log SET action = 'view'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError), site.db.transaction() as session:
            session.execute(text(statement))
    with site.db.transaction() as session:
        assert session.scalar(select(AuditEntry.id).limit(1)) is not None


def test_api_tokens(site: StaffSite) -> None:
    now = site.clock.now()
    with site.db.transaction() as session:
        user = session.get(User, site.user_ids["staff@clinic.test"])
        assert user is not None
        token = users.issue_api_token(session, user, label="lab", now=now)
        assert users.api_token_user(session, token, now) is not None
        assert users.api_token_user(session, token + "x", now) is None
        assert users.api_token_user(session, "", now) is None
