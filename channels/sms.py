"""SMS text economics: GSM-7 awareness, segment counting and splitting.

An SMS body in the GSM-7 alphabet fits 160 characters in one segment and 153
per part of a concatenated message; the extension characters (``^{}\\[~]|€``
and form feed) take two. One character outside GSM-7 turns the whole body
into UCS-2: 70 UTF-16 units in one segment, 67 per part. Twilio refuses bodies
over 1,600 characters (error 21617).
"""

from __future__ import annotations

import re

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
MAX_BODY_CHARS = 1600  # Twilio's limit for one message body (SMS and WhatsApp)
DEFAULT_MAX_SEGMENTS = 3

# Typographic characters with a GSM-7 stand-in; anything else is left alone.
_FRIENDLY = str.maketrans(
    {
        "\u2018": "'",  # ‘
        "\u2019": "'",  # ’
        "\u201a": "'",  # ‚
        "\u201b": "'",  # ‛
        "\u2032": "'",  # ′
        "\u00b4": "'",  # ´
        "`": "'",
        "\u201c": '"',  # “
        "\u201d": '"',  # ”
        "\u201e": '"',  # „
        "\u201f": '"',  # ‟
        "\u2033": '"',  # ″
        "\u00ab": '"',  # «
        "\u00bb": '"',  # »
        "\u2010": "-",  # ‐
        "\u2011": "-",  # non-breaking hyphen
        "\u2012": "-",  # ‒
        "\u2013": "-",  # –
        "\u2014": "-",  # —
        "\u2015": "-",  # ―
        "\u2212": "-",  # minus sign
        "\u2022": "-",  # •
        "\u00b7": "-",  # ·
        "\u2026": "...",  # …
        "\u00a0": " ",  # no-break space
        "\u2002": " ",
        "\u2003": " ",
        "\u2004": " ",
        "\u2005": " ",
        "\u2006": " ",
        "\u2007": " ",
        "\u2008": " ",
        "\u2009": " ",
        "\u200a": " ",
        "\u202f": " ",
        "\u205f": " ",
        "\u3000": " ",
        "\t": " ",
        "\u200b": "",  # zero-width space
        "\u200c": "",
        "\u200d": "",
        "\u2060": "",
        "\ufeff": "",
    }
)

_LINES = re.compile(r"(?<=\n)(?=[^\n])")
_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s|$)")
_NUMBERED = re.compile(r"\s*\d+[.)]?\Z")  # "12." of a numbered option line
_WORDS = re.compile(r"(\s+)")


def _sentence_ends(text: str) -> list[int]:
    """Offsets just after each sentence end; the "1." opening an option line is not one."""
    ends = []
    for match in _SENTENCE_END.finditer(text):
        line_start = text.rfind("\n", 0, match.start()) + 1
        if _NUMBERED.match(text, line_start, match.end()):
            continue
        ends.append(match.end())
    return ends


def _split_lines(text: str) -> list[str]:
    return _LINES.split(text)


def _split_sentences(text: str) -> list[str]:
    pieces, start = [], 0
    for end in _sentence_ends(text):
        pieces.append(text[start:end])
        start = end
    pieces.append(text[start:])
    return [piece for piece in pieces if piece]


def _split_words(text: str) -> list[str]:
    return [piece for piece in _WORDS.split(text) if piece]


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM-7 basic or extension table."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def to_gsm7_friendly(text: str) -> str:
    """Replace typographic quotes, dashes, ellipsis and odd spaces with GSM-7 ones.

    Accented letters are kept as they are: those GSM-7 has (é, ñ, ü ...) cost
    nothing, the others (á, í, ó, ú ...) make the message UCS-2, which is the
    price of writing Spanish correctly.
    """
    return text.translate(_FRIENDLY)


def _weights(text: str) -> tuple[list[int], int, int]:
    """Per-character cost, single-segment capacity and per-part capacity."""
    if is_gsm7(text):
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text], GSM7_SINGLE, GSM7_PART
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text], UCS2_SINGLE, UCS2_PART


def segments(text: str) -> int:
    """How many SMS segments ``text`` costs (0 for an empty text).

    Parts are packed the way handsets do: an escaped GSM-7 pair or a UTF-16
    surrogate pair is never split across two parts.
    """
    if not text:
        return 0
    weights, single, part = _weights(text)
    if sum(weights) <= single:
        return 1
    count, used = 1, 0
    for weight in weights:
        if used + weight > part:
            count += 1
            used = 0
        used += weight
    return count


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the strictest way a provider may count characters."""
    return sum(2 if ord(ch) > 0xFFFF else 1 for ch in text)


def _fits(text: str, max_segments: int) -> bool:
    return segments(text) <= max_segments and utf16_len(text) <= MAX_BODY_CHARS


def _hard_cut(text: str, max_segments: int) -> list[str]:
    parts: list[str] = []
    current = ""
    for ch in text:
        if current and not _fits(current + ch, max_segments):
            parts.append(current)
            current = ""
        current += ch
    if current:
        parts.append(current)
    return parts


# Coarsest first: lines, then sentences, then words; characters only as a last resort.
_LEVELS = (_split_lines, _split_sentences, _split_words)


def _pack(text: str, level: int, max_segments: int) -> list[str]:
    """Greedily pack the pieces of ``text`` at ``level`` into parts that fit.

    A piece too big on its own is split at the next finer level; the last
    part of that split stays open so the following pieces can join it.
    """
    if _fits(text.strip(), max_segments):
        return [text.strip()] if text.strip() else []
    if level >= len(_LEVELS):
        return _hard_cut(text.strip(), max_segments)
    parts: list[str] = []
    current = ""
    for piece in _LEVELS[level](text):
        candidate = current + piece
        if _fits(candidate.strip(), max_segments):
            current = candidate
            continue
        if current.strip():
            parts.append(current.strip())
        current = ""
        if _fits(piece.strip(), max_segments):
            current = piece
        else:
            *full, last = _pack(piece, level + 1, max_segments)
            parts.extend(full)
            current = last + piece[len(piece.rstrip()) :]
    if current.strip():
        parts.append(current.strip())
    return parts


def split_for_sms(text: str, max_segments: int = DEFAULT_MAX_SEGMENTS) -> list[str]:
    """Split ``text`` into bodies of at most ``max_segments`` segments each.

    A text that fits comes back whole. Otherwise it is cut on line
    boundaries, packing as many whole lines into each part as fit; a line too
    long for a part is cut between sentences, a sentence too long between
    words, and a single word, only then, anywhere. No part is over 1,600
    characters. Blank text gives no parts.
    """
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    if not text.strip():
        return []
    if _fits(text, max_segments):
        return [text]
    return _pack(text, 0, max_segments)


def truncate_on_boundary(text: str, max_chars: int = MAX_BODY_CHARS) -> str:
    """``text`` cut to ``max_chars`` UTF-16 units, at a sentence or line end when possible.

    Used where a body cannot be split (WhatsApp): nothing over 1,600
    characters is ever sent. A boundary in the second half of the allowance
    is preferred, then a space, then a hard cut.
    """
    if utf16_len(text) <= max_chars:
        return text
    prefix, used = [], 0
    for ch in text:
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > max_chars:
            break
        prefix.append(ch)
    head = "".join(prefix)
    ends = [m.end() for m in re.finditer(r"\n", head)] + _sentence_ends(head)
    ends.sort()
    floor = len(head) // 2
    if ends and ends[-1] > floor:
        return head[: ends[-1]].rstrip()
    space = head.rfind(" ")
    if space > floor:
        return head[:space].rstrip()
    return head
