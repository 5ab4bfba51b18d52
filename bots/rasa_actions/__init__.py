"""Rasa custom actions over the service's core (``telemed rasa-actions``).

Needs the ``rasa`` extra (``pip install -e '.[rasa]'``): rasa-sdk pins its own
web stack, so it is not a dependency of the service itself. Rasa's own
launcher finds the same actions: ``python -m rasa_sdk --actions
bots.rasa_actions``. See docs/rasa.md.
"""
