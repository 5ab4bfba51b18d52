"""Natural-language understanding for patient messages (pure functions, no I/O).

Duckling and rapidfuzz are imported lazily on first use, so importing this
package stays cheap.
"""

from core.nlu.intents import classify_intent
from core.nlu.language import detect_language
from core.nlu.redflags import RedFlag
from core.nlu.redflags import detect as detect_red_flag_details
from core.nlu.timeparse import When, parse_when
from core.nlu.understand import Understanding, detect_red_flags, understand

__all__ = [
    "RedFlag",
    "Understanding",
    "When",
    "classify_intent",
    "detect_language",
    "detect_red_flag_details",
    "detect_red_flags",
    "parse_when",
    "understand",
]
