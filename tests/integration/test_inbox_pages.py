"""The question inbox in the dashboard: who sees which threads, late ones on
top, a thread's page (audited), answering it (the patient's channel gets the
answer), CSRF, bad and hostile input, and the Telegram linking page."""

from __future__ import annotations

import re
from datetime import date, timedelta

from sqlalchemy import select

from core import questions
from core.clock import FixedClock
from core.db import Database
from core.models import AuditEntry, QuestionThread, User
from core.patients import find_or_create_patient_by_phone
from tests.staff import StaffSite


def ask(
    site: StaffSite,
    phone: str,
    body: str,
    *,
    doctor: str | None = "Ruiz",
    name: str = "Maria Lopez",
    media: list[dict[str, str]] | None = None,
) -> int:
    """A patient's question, as the ask-the-doctor flow opens it (now = the clock)."""
    practitioner = site.clinic.practitioner(doctor) if doctor else None
    with site.db.transaction() as session:
        now = site.clock.now()
        clinic_id = session.scalars(select(User.clinic_id)).first()
        assert clinic_id is not None
        patient = find_or_create_patient_by_phone(session, clinic_id, phone, "sms", now=now)
        patient.name, patient.date_of_birth = name, date(1980, 5, 17)
        thread = questions.open_thread(
            session,
            patient_id=patient.id,
            practitioner_id=practitioner,
            channel="sms",
            address=phone,
            body=body,
            media=media or [],
            inbound_id=None,
            now=now,
            settings=site.clinic.settings,
        )
        return thread.id


def thread_row(site: StaffSite, thread_id: int) -> QuestionThread:
    with site.db.transaction() as session:
        thread = session.get(QuestionThread, thread_id)
        assert thread is not None
        _ = thread.messages
        return thread


def audit_rows(site: StaffSite, **where: object) -> list[AuditEntry]:
    with site.db.transaction() as session:
        query = select(AuditEntry).order_by(AuditEntry.id)
        for key, value in where.items():
            query = query.where(getattr(AuditEntry, key) == value)
        return list(session.scalars(query))


def thread_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'data-thread="(\d+)"', html)]


def test_each_role_sees_its_threads(db: Database, clock: FixedClock) -> None:
    site = StaffSite.open(db, clock)
    ruiz = ask(site, "+15550001001", "Is this rash normal?", name="Maria Lopez")
    okafor = ask(site, "+15550001002", "Knee still hurts", doctor="Okafor", name="Tom Hale")
    triage = ask(site, "+15550001003", "Who should I ask?", doctor=None, name="Ida Berg")

    page = site.client("ruiz@clinic.test").get("/dashboard/inbox")
    assert page.status_code == 200
    assert thread_ids(page.text) == [ruiz]
    assert "Maria Lopez" in page.text and "Tom Hale" not in page.text
    assert thread_ids(site.client("okafor@clinic.test").get("/dashboard/inbox").text) == [okafor]
    for email in ("staff@clinic.test", "admin@clinic.test"):
        page = site.client(email).get("/dashboard/inbox")
        assert sorted(thread_ids(page.text)) == sorted([ruiz, okafor, triage])
        assert "Triage queue" in page.text
        assert f'href="/dashboard/inbox/{triage}"' in page.text


def test_late_threads_come_first_and_are_highlighted(db: Database, clock: FixedClock) -> None:
    site = StaffSite.open(db, clock)
    fresh = ask(site, "+15550001011", "New question")
    clock.advance(timedelta(days=-4))
    late = ask(site, "+15550001012", "Old question, still waiting")
    clock.advance(timedelta(days=4))

    page = site.client("ruiz@clinic.test").get("/dashboard/inbox")
    assert thread_ids(page.text) == [late, fresh]
    rows = re.findall(r'<tr class="([^"]*)" data-thread="(\d+)">(.*?)</tr>', page.text, re.S)
    classes = {int(tid): (cls, body) for cls, tid, body in rows}
    assert classes[late][0] == "late-row" and 'class="badge late"' in classes[late][1]
    assert classes[fresh][0] == "" and "late" not in classes[fresh][1]


def test_status_filter(db: Database, clock: FixedClock) -> None:
    site = StaffSite.open(db, clock)
    waiting = ask(site, "+15550001021", "Waiting")
    answered = ask(site, "+15550001022", "Answered already")
    with site.db.transaction() as session:
        ruiz = session.scalars(select(User).where(User.email == "ruiz@clinic.test")).one()
        questions.reply(
            session,
            answered,
            author=ruiz,
            body="Yes.",
            now=clock.now(),
            settings=site.clinic.settings,
        )
    client = site.client("ruiz@clinic.test")
    assert thread_ids(client.get("/dashboard/inbox").text) == [waiting]
    assert thread_ids(client.get("/dashboard/inbox?status=answered").text) == [answered]
    assert thread_ids(client.get("/dashboard/inbox?status=closed").text) == []
    assert sorted(thread_ids(client.get("/dashboard/inbox?status=all").text)) == sorted(
        [waiting, answered]
    )
    # An unknown filter is the default one, not an error.
    assert thread_ids(client.get("/dashboard/inbox?status=<b>").text) == [waiting]


def test_thread_page_shows_the_question_and_is_audited(db: Database, clock: FixedClock) -> None:
    site = StaffSite.open(db, clock)
    thread_id = ask(site, "+15550001031", "Is this rash normal?")
    patient_id = thread_row(site, thread_id).patient_id
    client = site.client("ruiz@clinic.test")

    page = client.get(f"/dashboard/inbox/{thread_id}")
    assert page.status_code == 200
    assert "Is this rash normal?" in page.text
    assert "Maria Lopez" in page.text and "1980-05-17" in page.text
    assert f'href="/dashboard/patients/{patient_id}"' in page.text
    assert 'name="body"' in page.text
    assert f'hx-post="/dashboard/inbox/{thread_id}/reply"' in page.text
    assert page.headers["cache-control"] == "no-store"
    (entry,) = audit_rows(site, action="view", entity="question", entity_id=thread_id)
    assert entry.patient_id == patient_id and entry.user_email == "ruiz@clinic.test"
    assert entry.source == "web"


def test_answer_reaches_the_patient(db: Database, clock: FixedClock) -> None:
    site = StaffSite.open(db, clock)
    thread_id = ask(site, "+15550001041", "Can I take ibuprofen?")
    client = site.client("ruiz@clinic.test")

    done = client.post(
        f"/dashboard/inbox/{thread_id}/reply", data={"body": "Yes, with food, for 3 days."}
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/dashboard/inbox/{thread_id}"
    thread = thread_row(site, thread_id)
    assert thread.status == "answered"
    assert [m.author for m in thread.messages] == ["patient", "doctor"]

    site.clinic.dispatch()
    (text,) = site.clinic.channels["sms"].texts("+15550001041")
    assert "Yes, with food, for 3 days." in text
    (entry,) = audit_rows(site, action="create", entity="question")
    assert entry.entity_id == thread_id and entry.patient_id == thread.patient_id

    page = client.get(f"/dashboard/inbox/{thread_id}")
    assert "Yes, with food, for 3 days." in page.text


def test_htmx_reply_swaps_the_thread(db: Database, clock: FixedClock) -> None:
    site = StaffSite.open(db, clock)
    thread_id = ask(site, "+15550001051", "Question")
    client = site.client("staff@clinic.test")

    done = client.post(
        f"/dashboard/inbox/{thread_id}/reply",
        data={"body": "The doctor will call you."},
        headers={"HX-Request": "true"},
    )
    assert done.status_code == 200
    assert done.text.lstrip().startswith('<section id="thread"')
    assert "<html" not in done.text
    assert "The doctor will call you." in done.text

    empty = client.post(
        f"/dashboard/inbox/{thread_id}/reply", data={"body": ""}, headers={"HX-Request": "true"}
    )
    assert empty.status_code == 200  # HTMX swaps only 2xx answers
    assert "the answer is empty" in empty.text


def test_reply_without_or_with_a_wrong_csrf_token_is_refused(
    db: Database, clock: FixedClock
) -> None:
    site = StaffSite.open(db, clock)
    thread_id = ask(site, "+15550001061", "Question")
    client = site.client("ruiz@clinic.test")
    url = f"/dashboard/inbox/{thread_id}/reply"

    assert client.post(url, data={"body": "Hi"}, csrf=False).status_code == 403
    wrong = client.post(url, data={"body": "Hi", "csrf_token": "forged"}, csrf=False)
    assert wrong.status_code == 403
    closing = client.post(f"/dashboard/inbox/{thread_id}/close", csrf=False)
    assert closing.status_code == 403
    thread = thread_row(site, thread_id)
    assert thread.status == "open" and len(thread.messages) == 1


def test_empty_or_too_long_answer_is_explained_in_the_page(db: Database, clock: FixedClock) -> None:
    site = StaffSite.open(db, clock)
    thread_id = ask(site, "+15550001071", "Question")
    client = site.client("ruiz@clinic.test")
    url = f"/dashboard/inbox/{thread_id}/reply"

    empty = client.post(url, data={"body": "   "})
    assert empty.status_code == 422
    assert "the answer is empty" in empty.text and 'role="alert"' in empty.text

    hostile = "<script>alert(1)</script>" + "x" * 10_000
    long = client.post(url, data={"body": hostile})
    assert long.status_code == 422
    assert "longer than 4000 characters" in long.text
    assert "<script>alert(1)" not in long.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in long.text  # kept in the box, escaped
    assert thread_row(site, thread_id).status == "open"
    site.clinic.dispatch()
    assert site.clinic.channels["sms"].texts() == []


def test_hostile_text_is_escaped_on_display(db: Database, clock: FixedClock) -> None:
    site = StaffSite.open(db, clock)
    thread_id = ask(
        site,
        "+15550001081",
        '<img src=x onerror="alert(1)">',
        name="<script>alert('name')</script>",
    )
    client = site.client("ruiz@clinic.test")
    answer = "<script>alert('answer')</script>"
    assert (
        client.post(f"/dashboard/inbox/{thread_id}/reply", data={"body": answer}).status_code == 303
    )

    for page in (
        client.get("/dashboard/inbox?status=all"),
        client.get(f"/dashboard/inbox/{thread_id}"),
    ):
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "<img src=x" not in page.text
        assert "&lt;script&gt;alert(&#39;name&#39;)&lt;/script&gt;" in page.text
    thread_page = client.get(f"/dashboard/inbox/{thread_id}").text
    assert "&lt;script&gt;alert(&#39;answer&#39;)&lt;/script&gt;" in thread_page


def test_photos_are_shown_only_through_the_media_proxy(db: Database, clock: FixedClock) -> None:
    """Never the stored address (a provider URL, or worse): bots.media fetches it."""
    site = StaffSite.open(db, clock)
    thread_id = ask(
        site,
        "+15550001091",
        "See the photo",
        media=[
            {"content_type": "image/jpeg", "url": "https://media.example/photo1.jpg"},
            {"content_type": "image/png", "url": "javascript:alert(1)"},
            {"content_type": "image/png", "url": "data:image/png;base64,AAAA"},
            {"content_type": "image/gif", "url": "//evil.example/x.gif"},
            {"content_type": "image/jpeg", "reference": "AgACAgQAAxkBAAIB"},
        ],
    )
    page = site.client("ruiz@clinic.test").get(f"/dashboard/inbox/{thread_id}")
    [message] = thread_row(site, thread_id).messages
    images = re.findall(r'<img src="([^"]*)"', page.text)
    assert images == [f"/dashboard/media/{message.id}/{i}" for i in range(5)]
    assert "media.example" not in page.text
    assert "javascript:" not in page.text
    assert "data:image" not in page.text
    assert "evil.example" not in page.text


def test_a_doctor_cannot_open_another_doctors_thread(db: Database, clock: FixedClock) -> None:
    site = StaffSite.open(db, clock)
    okafor = ask(site, "+15550001101", "For Dr Okafor", doctor="Okafor")
    triage = ask(site, "+15550001102", "For anyone", doctor=None)
    ruiz = site.client("ruiz@clinic.test")

    for thread_id in (okafor, triage):
        assert ruiz.get(f"/dashboard/inbox/{thread_id}").status_code == 403
        refused = ruiz.post(f"/dashboard/inbox/{thread_id}/reply", data={"body": "Mine now"})
        assert refused.status_code == 403
        assert ruiz.post(f"/dashboard/inbox/{thread_id}/close").status_code == 403
        thread = thread_row(site, thread_id)
        assert thread.status == "open" and len(thread.messages) == 1
    assert audit_rows(site, entity="question", user_email="ruiz@clinic.test") == []
    assert site.client("okafor@clinic.test").get(f"/dashboard/inbox/{okafor}").status_code == 200


def test_anonymous_visitors_are_sent_to_login(db: Database, clock: FixedClock) -> None:
    site = StaffSite.open(db, clock)
    thread_id = ask(site, "+15550001111", "Question")
    anonymous = site.anonymous()

    for url in ("/dashboard/inbox", f"/dashboard/inbox/{thread_id}", "/dashboard/telegram"):
        page = anonymous.get(url)
        assert page.status_code == 303
        assert page.headers["location"].startswith("/login?next=")
    assert (
        anonymous.post(f"/dashboard/inbox/{thread_id}/reply", data={"body": "x"}).status_code == 401
    )
    assert thread_row(site, thread_id).status == "open"


def test_closing_a_thread(db: Database, clock: FixedClock) -> None:
    site = StaffSite.open(db, clock)
    thread_id = ask(site, "+15550001121", "Thanks, all good now")
    client = site.client("staff@clinic.test")

    done = client.post(f"/dashboard/inbox/{thread_id}/close")
    assert done.status_code == 303
    assert thread_row(site, thread_id).status == "closed"
    (entry,) = audit_rows(site, action="update", entity="question")
    assert entry.entity_id == thread_id and entry.patient_id is not None
    page = client.get(f"/dashboard/inbox/{thread_id}")
    assert "This question is closed." in page.text and 'name="body"' not in page.text
    refused = client.post(f"/dashboard/inbox/{thread_id}/reply", data={"body": "More"})
    assert refused.status_code == 422 and "is closed" in refused.text


def test_unknown_thread_is_not_found(db: Database, clock: FixedClock) -> None:
    site = StaffSite.open(db, clock)
    client = site.client("admin@clinic.test")
    assert client.get("/dashboard/inbox/99999").status_code == 404
    assert client.post("/dashboard/inbox/99999/reply", data={"body": "x"}).status_code == 404
    assert client.get("/dashboard/inbox/not-a-number").status_code == 422


def test_telegram_page_shows_a_link_code_and_unlinks(db: Database, clock: FixedClock) -> None:
    site = StaffSite.open(db, clock)
    client = site.client("ruiz@clinic.test")

    page = client.get("/dashboard/telegram")
    assert page.status_code == 200
    code = re.search(r'id="link-code">([0-9A-Z]{8})<', page.text)
    assert code is not None
    assert f"/start {code.group(1)}" in page.text
    assert "not set up" in page.text  # no doctor bot token in this test
    assert "t.me/" not in page.text
    assert "Unlink" not in page.text

    with site.db.transaction() as session:
        user = session.get(User, site.user_ids["ruiz@clinic.test"])
        assert user is not None
        user.telegram_chat_id = "777"
    assert "Unlink Telegram" in client.get("/dashboard/telegram").text
    assert (
        client.post("/dashboard/telegram", data={"action": "unlink"}, csrf=False).status_code == 403
    )
    done = client.post("/dashboard/telegram", data={"action": "unlink"})
    assert done.status_code == 303
    with site.db.transaction() as session:
        user = session.get(User, site.user_ids["ruiz@clinic.test"])
        assert user is not None and user.telegram_chat_id is None
