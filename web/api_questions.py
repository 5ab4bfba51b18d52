"""Patients' questions over the REST API (``/api/v1``): the inbox, a thread,
and the care team's reply, through ``core.questions`` (as the dashboard).

Scoped like the inbox: a doctor's token sees and answers their own
practitioner's threads (403 for others'), staff and admin tokens all of them,
the triage queue included. A reply is signed by a person, so the legacy
``TELEMED_API_TOKEN`` integration, which has no user, may read but not reply.
Message bodies are patient data: every answer is audited, nothing is logged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from core import questions
from core.models import QuestionThread
from web.api_auth import (
    AUTH_ERRORS,
    MAX_ID,
    ApiUser,
    Caller,
    ClockDep,
    DbDep,
    SettingsDep,
    check_practitioner,
    problem,
    record,
)

router = APIRouter(tags=["questions"])
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="the thread's id")]


class ThreadSummary(BaseModel):
    id: int = Field(examples=[12])
    patient_id: int
    patient_name: str | None = Field(examples=["Maria Lopez"])
    practitioner_id: int | None = Field(description="null: the clinic's triage queue")
    status: str = Field(description="open, answered or closed", examples=["open"])
    channel: str = Field(description="where the answer goes", examples=["whatsapp"])
    due_at: datetime = Field(description="when the patient was told to expect an answer")
    late: bool = Field(description="open and past due_at")
    created_at: datetime
    last_at: datetime
    last_author: str = Field(description="patient, doctor or staff", examples=["patient"])
    preview: str = Field(description="one line of the last message", examples=["Is a rash…"])


class MessageOut(BaseModel):
    id: int
    author: str = Field(description="patient, doctor or staff")
    user_id: int | None = Field(description="the care-team user who wrote it")
    body: str
    media: list[dict[str, Any]] = Field(
        description="attachments: url and content_type", examples=[[]]
    )
    created_at: datetime


class ThreadOut(BaseModel):
    id: int
    patient_id: int
    patient_name: str | None
    practitioner_id: int | None
    status: str
    channel: str
    due_at: datetime
    late: bool
    created_at: datetime
    answered_at: datetime | None
    messages: list[MessageOut] = Field(description="oldest first")


class ReplyIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"body": "It is usually harmless; send a photo."}]},
    )

    body: str = Field(min_length=1, max_length=questions.MAX_BODY)


def _thread_out(thread: QuestionThread, now: datetime) -> ThreadOut:
    return ThreadOut(
        id=thread.id,
        patient_id=thread.patient_id,
        patient_name=thread.patient.name,
        practitioner_id=thread.practitioner_id,
        status=thread.status,
        channel=thread.channel,
        due_at=thread.due_at,
        late=questions.is_late(thread, now),
        created_at=thread.created_at,
        answered_at=thread.answered_at,
        messages=[
            MessageOut(
                id=m.id,
                author=m.author,
                user_id=m.user_id,
                body=m.body,
                media=list(m.media or []),
                created_at=m.created_at,
            )
            for m in thread.messages
        ],
    )


@router.get(
    "/questions",
    response_model=list[ThreadSummary],
    responses={**AUTH_ERRORS, 422: problem("a bad query parameter")},
)
def list_questions(
    db: DbDep,
    clock: ClockDep,
    user: Caller,
    status: Annotated[
        Literal["open", "answered", "closed", "all"],
        Query(description="which threads; open (waiting for the care team) by default"),
    ] = "open",
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> list[ThreadSummary]:
    """The inbox: late threads first, then by due time."""
    now = clock.now()
    with db.transaction() as session:
        rows = questions.inbox(
            session,
            actor=user,
            status=None if status == "all" else status,
            now=now,
            limit=limit,
        )
        out = [
            ThreadSummary(
                id=row.thread.id,
                patient_id=row.thread.patient_id,
                patient_name=row.thread.patient.name,
                practitioner_id=row.thread.practitioner_id,
                status=row.thread.status,
                channel=row.thread.channel,
                due_at=row.thread.due_at,
                late=row.late,
                created_at=row.thread.created_at,
                last_at=row.last_at,
                last_author=row.last_author,
                preview=row.preview,
            )
            for row in rows
        ]
        record(
            session,
            user,
            clock,
            "view",
            "question",
            detail={"count": len(out), "patient_ids": sorted({t.patient_id for t in out})},
        )
        return out


def _get(session: Session, user: ApiUser, thread_id: int) -> QuestionThread:
    thread = session.get(QuestionThread, thread_id)
    if thread is None:
        raise HTTPException(404, f"no question thread {thread_id}")
    check_practitioner(user, thread.practitioner_id, f"question thread {thread_id}")
    return thread


@router.get(
    "/questions/{thread_id}",
    response_model=ThreadOut,
    responses={**AUTH_ERRORS, 404: problem("unknown thread")},
)
def get_question(thread_id: IdPath, db: DbDep, clock: ClockDep, user: Caller) -> ThreadOut:
    """A thread with all its messages."""
    with db.transaction() as session:
        thread = _get(session, user, thread_id)
        record(
            session,
            user,
            clock,
            "view",
            "question",
            entity_id=thread.id,
            patient_id=thread.patient_id,
        )
        return _thread_out(thread, clock.now())


@router.post(
    "/questions/{thread_id}/reply",
    response_model=ThreadOut,
    responses={
        **AUTH_ERRORS,
        404: problem("unknown thread"),
        409: problem("the thread is closed"),
        422: problem("an empty or too long answer"),
    },
)
def reply_to_question(
    thread_id: IdPath,
    body: ReplyIn,
    db: DbDep,
    clock: ClockDep,
    settings: SettingsDep,
    user: Caller,
) -> ThreadOut:
    """Answer the patient: the answer goes to the channel they wrote from last
    (within its rules) and the thread is answered. Needs a user's token."""
    if user.integration:
        raise HTTPException(403, "a reply is signed by a person: use a user's token")
    now = clock.now()
    with db.transaction() as session:
        thread = _get(session, user, thread_id)
        if thread.status == "closed":
            raise HTTPException(409, f"question thread {thread_id} is closed")
        try:
            message = questions.reply(
                session, thread.id, author=user, body=body.body, now=now, settings=settings
            )
        except questions.QuestionError as exc:
            raise HTTPException(422, str(exc)) from None
        record(
            session,
            user,
            clock,
            "send",
            "question",
            entity_id=thread.id,
            patient_id=thread.patient_id,
            detail={"message_id": message.id},
        )
        return _thread_out(thread, now)
