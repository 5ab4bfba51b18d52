"""Prescriptions and pharmacies in the chat.

* "Your prescription from Dr Ruiz is ready. Reply 1 to see it": the details
  (medicines, pickup code, printable page) are shown only to an identity that
  proved who it is (``flows.verify``).
* Choosing a pharmacy: a shared location (WhatsApp, Telegram) or a typed
  postcode, town or street; the nearest first, with distance, address and
  whether they are open now. Picking one sends the prescription there.
* "pharmacy near me" works at any time, with no prescription involved.
* "refill": a request for more of an active prescription, to the prescriber.
"""

from __future__ import annotations

import re
from typing import Any

from core import pharmacies, prescriptions, verification
from core.i18n import format_day
from core.messages import Option, Reply
from core.models import Pharmacy, Prescription
from core.nlu import classify_intent
from flows import verify
from flows.context import Ctx, Outcome, fold, with_notice

PICK = "rx.pick"
SHOW = "rx.show"
WHERE = "rx.where"
PLACE = "rx.place"
CHOOSE = "rx.pharmacy"
REFILL = "rx.refill"
SHOWN = 5
OPEN = ("issued", "sent", "ready")

_ASKS = re.compile(r"\b(prescriptions?|my meds|receta|recetas|mi medicacion|mis medicamentos)\b")


_REFILL = re.compile(
    r"\b(refills?|renew|more of my|run(ning)? out|renovar|renovacion|repetir|mas de mi)\b"
)


def asks_for_prescriptions(text: str) -> bool:
    """ "my prescriptions", not "refill my prescription" (the refill intent)."""
    folded = fold(text)
    return bool(_ASKS.search(folded)) and not _REFILL.search(folded)


def open_prescriptions(ctx: Ctx) -> list[Prescription]:
    if ctx.identity.patient_id is None:
        return []
    return [
        p
        for p in prescriptions.for_patient(ctx.session, ctx.identity.patient_id)
        if prescriptions.effective_status(p, ctx.now) in OPEN
    ]


def see(ctx: Ctx, prescription_id: int | None = None) -> Outcome:
    """Show a prescription (the one named, else the patient's open ones), once verified."""
    data = {"prescription_id": prescription_id} if prescription_id else {}
    return verify.require(ctx, PICK, data)


def find_pharmacy(ctx: Ctx) -> Outcome:
    ctx.conversation.data = {}
    return Outcome.go(WHERE)


def refill(ctx: Ctx) -> Outcome:
    return verify.require(ctx, REFILL, {})


def _mine(ctx: Ctx, prescription_id: Any) -> Prescription | None:
    if not isinstance(prescription_id, int):
        return None
    found = ctx.session.get(Prescription, prescription_id)
    if found is None or found.patient_id != ctx.identity.patient_id:
        return None
    return found


class PickPrescription:
    """Which prescription? Skipped when it is named or there is only one."""

    name = PICK

    def enter(self, ctx: Ctx) -> Outcome | None:
        if not verification.is_verified(ctx.identity):
            return verify.require(ctx, PICK, dict(ctx.data))
        named = _mine(ctx, ctx.data.get("prescription_id"))
        if named is not None:
            return Outcome.go(SHOW)
        found = open_prescriptions(ctx)
        if not found:
            return Outcome.end(ctx.t("rx.none"))
        if len(found) == 1:
            ctx.data["prescription_id"] = found[0].id
            return Outcome.go(SHOW)
        return None

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        options = _pick_options(ctx, open_prescriptions(ctx))
        return [ctx.ask(with_notice(notice, ctx.t("rx.which")), options)]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        if ctx.choice and ctx.choice.startswith("p:"):
            ctx.data["prescription_id"] = int(ctx.choice[2:])
            return Outcome.go(SHOW)
        return Outcome.stay(ctx.t("common.pick_number"))


def _pick_options(ctx: Ctx, found: list[Prescription]) -> list[Option]:
    """The first few prescriptions as options: prescriber and date, no medicine
    (the list can be shown before the details)."""
    return [
        Option(
            ctx.t(
                "rx.pick_item",
                practitioner=p.practitioner.name,
                date=format_day(p.issued_at, ctx.lang, ctx.tz),
            ),
            f"p:{p.id}",
        )
        for p in found[:SHOWN]
    ]


class ShowPrescription:
    name = SHOW

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        p = _mine(ctx, ctx.data.get("prescription_id"))
        if p is None:
            return [Reply(with_notice(notice, ctx.t("common.lost")))]
        status = prescriptions.effective_status(p, ctx.now)
        lines = [ctx.t("rx.details", practitioner=p.practitioner.name)]
        lines += prescriptions.describe(p, ctx.lang, ctx.tz)
        lines.append(ctx.t("rx.page_link", url=prescriptions.page_url(ctx.settings.public_url, p)))
        if status in ("cancelled", "expired", "dispensed"):
            lines.append(ctx.t(f"rx.status_{status}"))
            return [Reply(with_notice(notice, "\n".join(lines)))]
        if p.pharmacy is not None:
            key = "rx.at_pharmacy_ready" if status == "ready" else "rx.at_pharmacy"
            lines.append(ctx.t(key, pharmacy=p.pharmacy.name))
        options = [
            Option(ctx.t("rx.choose_pharmacy"), "pharmacy"),
            Option(ctx.t("rx.to_menu"), "menu"),
        ]
        return [ctx.ask(with_notice(notice, "\n".join(lines)), options)]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        if ctx.choice == "pharmacy":
            return Outcome.go(WHERE)
        if ctx.choice == "menu":
            ctx.conversation.data = {}
            return Outcome.go("menu.main")
        return Outcome.stay(ctx.t("common.pick_number"))


def _list_near(ctx: Ctx, lat: float, lon: float) -> Outcome:
    found = pharmacies.nearest(ctx.session, lat, lon, limit=SHOWN)
    if not found:
        return Outcome.stay(ctx.t("rx.none_near"))
    ctx.data["found"] = [[f.id, round(f.distance_km, 1)] for f in found]
    ctx.data.pop("places", None)
    return Outcome.go(CHOOSE)


class WhereAreYou:
    name = WHERE

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        return [ctx.ask(with_notice(notice, ctx.t("rx.where")))]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        location = ctx.message.location
        if location is not None:
            try:
                return _list_near(ctx, location.latitude, location.longitude)
            except ValueError:
                return Outcome.stay(ctx.t("rx.where_again"))
        if not text.strip():
            return Outcome.stay(ctx.t("rx.where_again"))
        result = pharmacies.search_text(ctx.session, text)
        if result.place is not None:
            return _list_near(ctx, result.place.latitude, result.place.longitude)
        if result.ambiguous:
            ctx.data["places"] = [
                [place.label, place.latitude, place.longitude] for place in result.places
            ]
            return Outcome.go(PLACE)
        hint = (
            ctx.t("rx.did_you_mean", places=", ".join(result.suggestions))
            if result.suggestions
            else ctx.t("rx.where_unknown", text=text[:40])
        )
        return Outcome.stay(hint)


class WhichPlace:
    """A town name several places share: which one?"""

    name = PLACE

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        places = ctx.data.get("places") or []
        options = [Option(str(label), f"pl:{i}") for i, (label, _lat, _lon) in enumerate(places)]
        return [ctx.ask(with_notice(notice, ctx.t("rx.which_place")), options)]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        places = ctx.data.get("places") or []
        if ctx.choice and ctx.choice.startswith("pl:"):
            _label, lat, lon = places[int(ctx.choice[3:])]
            return _list_near(ctx, float(lat), float(lon))
        return WhereAreYou().handle(ctx, text)  # a postcode typed instead is fine


class ChoosePharmacy:
    name = CHOOSE

    def _found(self, ctx: Ctx) -> list[tuple[Pharmacy, float]]:
        rows = []
        for pharmacy_id, km in ctx.data.get("found") or []:
            pharmacy = ctx.session.get(Pharmacy, int(pharmacy_id))
            if pharmacy is not None:
                rows.append((pharmacy, float(km)))
        return rows

    def _open(self, ctx: Ctx, pharmacy: Pharmacy) -> str:
        state = pharmacies.is_open(pharmacy, ctx.now, ctx.clinic.timezone)
        if state is None:
            return ctx.t("rx.hours_unknown")
        return ctx.t("rx.open") if state else ctx.t("rx.closed")

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        options = [
            Option(
                ctx.t(
                    "rx.pharmacy_line",
                    name=pharmacy.name,
                    km=f"{km:.1f}",
                    address=pharmacy.address or pharmacy.city or "",
                    open=self._open(ctx, pharmacy),
                ),
                f"ph:{pharmacy.id}",
            )
            for pharmacy, km in self._found(ctx)
        ]
        key = "rx.pick_pharmacy" if ctx.data.get("prescription_id") else "rx.nearest"
        return [ctx.ask(with_notice(notice, ctx.t(key)), options)]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        if not (ctx.choice and ctx.choice.startswith("ph:")):
            if ctx.message.location is not None or (text.strip() and not text.strip().isdigit()):
                return WhereAreYou().handle(ctx, text)  # somewhere else instead
            return Outcome.stay(ctx.t("common.pick_number"))
        pharmacy = ctx.session.get(Pharmacy, int(ctx.choice[3:]))
        if pharmacy is None:
            return Outcome.stay(ctx.t("common.pick_number"))
        details = ctx.t(
            "rx.pharmacy_details",
            name=pharmacy.name,
            address=", ".join(x for x in (pharmacy.address, pharmacy.city) if x),
            phone=pharmacy.phone or "-",
            hours=pharmacy.opening_hours or "-",
        )
        p = _mine(ctx, ctx.data.get("prescription_id"))
        if p is None:
            return Outcome.end(details)
        try:
            prescriptions.route_to_pharmacy(ctx.session, p.id, pharmacy.id, ctx.now)
        except prescriptions.PrescriptionError:
            return Outcome.end(ctx.t("rx.cannot_route"))
        return Outcome.end(
            ctx.t(
                "rx.routed",
                pharmacy=pharmacy.name,
                code=prescriptions.format_code(p.pickup_code),
            ),
            details,
        )


class AskRefill:
    name = REFILL

    def enter(self, ctx: Ctx) -> Outcome | None:
        if not verification.is_verified(ctx.identity):
            return verify.require(ctx, REFILL, {})
        # All of them: one that cannot be refilled (expired, cancelled...) gets
        # its reason and the offer to ask the doctor, not "you have none".
        found = prescriptions.for_patient(ctx.session, ctx.identity.patient_id or 0)
        if not found:
            return Outcome.end(ctx.t("rx.refill_none"))
        if len(found) == 1:
            return self._ask(ctx, found[0])
        return None

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        mine = prescriptions.for_patient(ctx.session, ctx.identity.patient_id or 0)
        return [ctx.ask(with_notice(notice, ctx.t("rx.refill_which")), _pick_options(ctx, mine))]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        if ctx.choice and ctx.choice.startswith("p:"):
            p = _mine(ctx, int(ctx.choice[2:]))
            if p is not None:
                return self._ask(ctx, p)
        return Outcome.stay(ctx.t("common.pick_number"))

    def _ask(self, ctx: Ctx, p: Prescription) -> Outcome:
        try:
            prescriptions.request_refill(
                ctx.session, p, ctx.message.channel, ctx.message.address, ctx.now
            )
        except prescriptions.PrescriptionError as exc:
            reason = getattr(exc, "reason", "not_active")
            text = ctx.t(f"rx.error.{reason}", practitioner=p.practitioner.name)
            if reason in ASK_DOCTOR_REASONS:
                ctx.conversation.data = {"prescription_id": p.id}
                return Outcome.go(ASK_DOCTOR, text)
            return Outcome.end(text)
        return Outcome.end(ctx.t("rx.refill_sent", practitioner=p.practitioner.name))


ASK_DOCTOR = "rx.ask_doctor"
# A refill refused for these reasons can still go to the doctor as a request for a new one.
ASK_DOCTOR_REASONS = ("expired", "cancelled", "no_refills")


class AskDoctor:
    """ "Would you like to ask the doctor for a new one?" """

    name = ASK_DOCTOR

    def prompt(self, ctx: Ctx, notice: str | None = None) -> list[Reply]:
        options = [Option(ctx.t("rx.ask_doctor"), "ask"), Option(ctx.t("rx.no_thanks"), "no")]
        return [ctx.ask(notice or ctx.t("common.pick_number"), options)]

    def handle(self, ctx: Ctx, text: str) -> Outcome:
        choice = ctx.choice or {"confirm": "ask", "deny": "no"}.get(classify_intent(text, ctx.lang))
        if choice == "no":
            return Outcome.end(ctx.t("rx.kept"))
        p = _mine(ctx, ctx.data.get("prescription_id"))
        if choice != "ask" or p is None:
            return Outcome.stay(ctx.t("common.pick_number"))
        try:
            prescriptions.request_refill(
                ctx.session, p, ctx.message.channel, ctx.message.address, ctx.now, renew=True
            )
        except prescriptions.PrescriptionError as exc:
            reason = getattr(exc, "reason", "not_active")
            return Outcome.end(ctx.t(f"rx.error.{reason}", practitioner=p.practitioner.name))
        return Outcome.end(ctx.t("rx.refill_sent", practitioner=p.practitioner.name))
