"""The dashboard in a test: the demo clinic, one user per role, and logged-in
HTTP clients (Starlette's TestClient over the real app and database).

    site = StaffSite.open(db, clock)
    doctor = site.client("ruiz@clinic.test")      # logged in as Dr Ruiz
    page = doctor.get("/dashboard")
    doctor.post("/dashboard/...", data={...})      # CSRF token added for you
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi.testclient import TestClient

from bots.app import create_app
from core import users
from core.clock import FixedClock
from core.db import Database
from tests.clinic import Clinic

# Hashing at argon2's default cost (~50 ms each) would dominate these tests.
users.use_cheap_hashing()

PASSWORD = "correct horse battery"
# email -> (role, practitioner name or None)
USERS = {
    "admin@clinic.test": ("admin", None),
    "staff@clinic.test": ("staff", None),
    "ruiz@clinic.test": ("doctor", "Ruiz"),
    "okafor@clinic.test": ("doctor", "Okafor"),
}
CSRF_META = re.compile(r'"X-CSRF-Token": "([^"]+)"')


class StaffClient(TestClient):
    """A TestClient that adds the session's CSRF token to every POST."""

    csrf: str = ""

    def post(self, url: Any, *args: Any, csrf: bool = True, **kwargs: Any) -> Any:  # type: ignore[override]
        if csrf and self.csrf:
            data = kwargs.get("data")
            if isinstance(data, dict) and "csrf_token" not in data:
                kwargs["data"] = {**data, "csrf_token": self.csrf}
            elif data is None and "json" not in kwargs and "content" not in kwargs:
                kwargs["data"] = {"csrf_token": self.csrf}
        return super().post(url, *args, **kwargs)


@dataclass
class StaffSite:
    clinic: Clinic
    app: Any
    user_ids: dict[str, int]

    @property
    def db(self) -> Database:
        return self.clinic.db

    @property
    def clock(self) -> FixedClock:
        return self.clinic.clock

    @classmethod
    def open(cls, db: Database, clock: FixedClock, **settings: object) -> StaffSite:
        clinic = Clinic.open(db, clock, **settings)
        ids: dict[str, int] = {}
        with db.transaction() as session:
            for email, (role, practitioner) in USERS.items():
                user = users.create_user(
                    session,
                    email=email,
                    role=role,
                    password=PASSWORD,
                    practitioner=practitioner,
                    now=clock.now(),
                )
                ids[email] = user.id
        app = create_app(
            clinic.settings, db=db, clock=clock, role="web", senders=dict(clinic.channels)
        )
        return cls(clinic, app, ids)

    def anonymous(self) -> StaffClient:
        return StaffClient(self.app, follow_redirects=False)

    def client(self, email: str | None) -> StaffClient:
        """A client logged in as ``email`` (None: anonymous)."""
        client = self.anonymous()
        if email is None:
            return client
        form = client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token is not None, form.text
        done = client.post(
            "/login",
            data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)},
            csrf=False,
        )
        assert done.status_code == 303, done.text
        page = client.get("/dashboard")
        found = CSRF_META.search(page.text)
        assert found is not None, page.text[:500]
        client.csrf = found.group(1)
        return client

    @contextmanager
    def logged_in(self, email: str) -> Iterator[StaffClient]:
        with self.client(email) as client:
            yield client
