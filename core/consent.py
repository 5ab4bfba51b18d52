"""What may be sent to a channel identity, by purpose.

Purposes: ``reply`` (an answer to the patient's own message), ``consent``
(confirming an opt-out or opt-in: always sent, once), ``reminder``,
``clinical`` (results, prescriptions ready...), ``marketing``, ``emergency`` and
``alert`` (see ALWAYS). After an
opt-out word only ``consent`` goes out. Marketing is never sent unless the
patient agreed to it.
"""

from __future__ import annotations

from core.models import ChannelIdentity

# Always sent: confirming an opt-out/in; an emergency answer (a patient who
# opted out still gets the emergency number when they write one); staff alerts
# (to a clinician, not a patient who could have opted out).
ALWAYS = frozenset({"consent", "emergency", "alert"})
DEFAULTS = {"reply": True, "reminder": True, "clinical": True, "marketing": False}


def allows(identity: ChannelIdentity | None, purpose: str) -> bool:
    """May a message of ``purpose`` go to ``identity`` now?"""
    if purpose in ALWAYS:
        return True
    if identity is None:
        # Nobody we know of: answers are fine (they wrote first), nothing else.
        return purpose == "reply"
    if identity.opted_out_at is not None:
        return False
    granted = (identity.consents or {}).get(purpose)
    return bool(DEFAULTS.get(purpose, False) if granted is None else granted)
