"""docs/rasa: the example domain, rules and endpoints a clinic starts from
agree with the actions the server really has and the slots they really use."""

from __future__ import annotations

import re

from bots.rasa_actions import actions
from channels.rasa import INTENT
from tests.rasa.conftest import DOMAIN, ROOT, ActionServer, load_yaml

SOURCE = (ROOT / "bots" / "rasa_actions" / "actions.py").read_text()
# Intents the actions' buttons carry (button(title, "intent", ...) and intent="...").
PAYLOAD_INTENTS = (
    set(re.findall(r'intent="(\w+)"', SOURCE))
    | set(re.findall(r'button\(\s*(?:[^,()]|\([^()]*\))+,\s*"(\w+)"', SOURCE))
    | {"deny"}
)


def test_the_domain_lists_exactly_the_servers_actions(rasa: ActionServer) -> None:
    listed = {a["name"] for a in rasa.get("/actions", token="rasa-test-token").json()}
    assert set(DOMAIN["actions"]) == listed


def test_every_slot_the_actions_use_is_in_the_domain() -> None:
    used = set(
        re.findall(
            r'(?:slot_text|slot_id|get_slot|latest_entity|_coordinate)\(\s*\w+,\s*"(\w+)"', SOURCE
        )
    ) | set(re.findall(r'(?:said\.set|get_slot)\(\s*"(\w+)"', SOURCE))
    used |= set(re.findall(r'wanted_time\(turn, tracker, slot: str = "(\w+)"', SOURCE))
    assert {
        "practitioner",
        "start_time",
        "appointment_id",
        "patient_name",
    } <= used  # the scan works
    assert used <= set(DOMAIN["slots"]), used - set(DOMAIN["slots"])


def test_button_payloads_use_the_domains_intents_and_entities() -> None:
    assert {"book", "choose_time", "choose_new_time", "reschedule", "cancel", "find_pharmacy"} <= (
        PAYLOAD_INTENTS
    )
    assert set(DOMAIN["intents"]) >= PAYLOAD_INTENTS
    for entity in ("practitioner_id", "start_time", "appointment_id", "latitude", "longitude"):
        assert entity in DOMAIN["entities"]
        mapping = DOMAIN["slots"][entity]["mappings"][0]
        assert mapping == {"type": "from_entity", "entity": entity}


def test_the_registration_form_and_its_validation() -> None:
    form = DOMAIN["forms"][actions.REGISTRATION_FORM]
    assert form["required_slots"] == ["patient_name", "date_of_birth"]
    assert f"validate_{actions.REGISTRATION_FORM}" in DOMAIN["actions"]
    for slot in form["required_slots"]:
        assert f"utter_ask_{slot}" in DOMAIN["responses"]


def test_messages_from_the_clinic_have_their_intent_slot_and_response() -> None:
    assert INTENT in DOMAIN["intents"]
    assert {"telemed_message", "telemed_purpose"} <= set(DOMAIN["entities"])
    assert DOMAIN["responses"]["utter_telemed_message"] == [{"text": "{telemed_message}"}]


def test_the_rules_name_only_what_the_domain_has() -> None:
    rules = load_yaml(ROOT / "docs" / "rasa" / "rules.yml")["rules"]
    known_actions = set(DOMAIN["actions"]) | set(DOMAIN["responses"]) | set(DOMAIN["forms"])
    routed = set()
    for rule in rules:
        for step in rule["steps"]:
            if "intent" in step:
                assert step["intent"] in DOMAIN["intents"], rule["rule"]
                routed.add(step["intent"])
            if "action" in step:
                assert step["action"] in known_actions, rule["rule"]
    assert routed >= PAYLOAD_INTENTS - {"deny"}


def test_endpoints_point_at_the_webhook_with_a_token() -> None:
    endpoint = load_yaml(ROOT / "docs" / "rasa" / "endpoints.yml")["action_endpoint"]
    assert endpoint["url"].endswith(":5055/webhook")
    assert endpoint["token"]
