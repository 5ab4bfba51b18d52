"""SMS-pumping guard: an address that sends too fast gets no replies for a while.

Stateless: everything is read from the inbound log (``inbound_messages``),
which keeps every message anyway, so nothing new is written on the hot path
and the verdict is the same in every process.

A message *trips* the limit when it and the ``max_per_minute`` messages
before it from the same (channel, address) all arrived within 60 seconds
(that is, more than ``max_per_minute`` in a minute). The address is
*limited* while its latest trip is less than ``cooldown`` old, so an address
that keeps pumping stays limited. A message that trips the limit when
nothing else in the cooldown did is the ``TRIPPED`` one: it alone earns the
short notice.

Cost: one query per inbound message, reading only this address's rows of the
last ``cooldown + 1 minute`` (newest first, at most ``scan_limit`` of them).
It is a range scan on the (channel, address, received_at) index.
"""

from __future__ import annotations

import enum
import math
from datetime import datetime, timedelta

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from core.models import InboundLog, table_of

WINDOW = timedelta(seconds=60)


_LOG = table_of(InboundLog)
# Built once: this runs for every inbound message.
_RECENT = (
    select(_LOG.c.id, _LOG.c.received_at)
    .where(
        _LOG.c.address == bindparam("address"),
        _LOG.c.channel == bindparam("channel"),
        _LOG.c.received_at > bindparam("since"),
    )
    .order_by(_LOG.c.received_at.desc(), _LOG.c.id.desc())
    .limit(bindparam("scan"))
)


class Verdict(enum.Enum):
    OK = "ok"
    TRIPPED = "tripped"  # this message crossed the limit: send the one notice
    LIMITED = "limited"  # already cooling down: no replies


def scan_limit(max_per_minute: int, cooldown: timedelta) -> int:
    """Rows read at most. After a trip, at most ``max_per_minute`` messages a
    minute can follow without tripping again, so this many newest rows always
    still show the latest trip of the cooldown (only a pumping address reads
    that many: everyone else has a handful of rows in the time range)."""
    minutes = math.ceil(cooldown / timedelta(minutes=1))
    return max_per_minute * (minutes + 2) + 1


def check(
    session: Session,
    *,
    channel: str,
    address: str,
    inbound_id: int,
    now: datetime,
    max_per_minute: int,
    cooldown: timedelta,
) -> Verdict:
    """The verdict for message ``inbound_id`` (already inserted in this transaction)."""
    rows = session.execute(
        _RECENT,
        {
            "address": address,
            "channel": channel,
            "since": now - cooldown - WINDOW,
            "scan": scan_limit(max_per_minute, cooldown),
        },
    ).all()
    if len(rows) <= max_per_minute:
        return Verdict.OK  # the common case: too few recent messages to trip anything
    times = [received for _, received in reversed(rows)]  # oldest first
    ids = [row_id for row_id, _ in reversed(rows)]
    since = now - cooldown
    tripped_here = False
    tripped_before = False
    for i in range(max_per_minute, len(times)):
        if times[i] - times[i - max_per_minute] < WINDOW and times[i] > since:
            if ids[i] == inbound_id:
                tripped_here = True
            else:
                tripped_before = True
    if tripped_before:
        return Verdict.LIMITED
    return Verdict.TRIPPED if tripped_here else Verdict.OK
