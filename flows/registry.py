"""Every step by name, and the cheap checks the engine needs across flows."""

from __future__ import annotations

from flows import (
    ask_doctor,
    booking,
    emergency,
    intake,
    manage,
    menu,
    prescriptions,
    prompts,
    verify,
    video,
    waitlist,
)
from flows.context import Ctx, Step

STEPS: dict[str, Step] = {
    step.name: step
    for step in (
        menu.MainMenu(),
        menu.Language(),
        menu.Resume(),
        emergency.AfterEmergency(),
        verify.AskDob(),
        verify.AskCode(),
        prescriptions.PickPrescription(),
        prescriptions.ShowPrescription(),
        prescriptions.WhereAreYou(),
        prescriptions.WhichPlace(),
        prescriptions.ChoosePharmacy(),
        prescriptions.AskRefill(),
        prescriptions.AskDoctor(),
        booking.ChoosePractitioner(),
        booking.ChooseDay(),
        booking.ChooseSlot(),
        booking.AskName(),
        booking.AskDob(),
        booking.Confirm(),
        manage.MyAppointments(),
        manage.PickToReschedule(),
        manage.PickToCancel(),
        manage.ConfirmCancel(),
        prompts.PromptReply(),
        waitlist.Join(),
        intake.Offer(),
        intake.Question(),
        intake.SameDay(),
        ask_doctor.Start(),
        ask_doctor.Who(),
        ask_doctor.Question(),
        ask_doctor.AskName(),
        ask_doctor.AskDob(),
        video.SendLink(),
    )
}


def get(name: str) -> Step | None:
    return STEPS.get(name)


def mentions_booking_details(ctx: Ctx, text: str) -> bool:
    """Does free text name a time or a doctor, as in "tuesday with Dr Ruiz"?"""
    if booking.understood_when(ctx, text) is not None:
        return True
    return bool(text.strip()) and bool(booking.named_practitioners(ctx, text))
