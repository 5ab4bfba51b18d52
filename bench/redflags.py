"""Speed of the red-flag check, which runs on every inbound message.

Times the first call (loads and compiles redflags.toml, imports rapidfuzz),
then the rows of tests/unit/test_red_flags.py as warm calls, and long
messages. Prints per-message mean and p99; asserts nothing.

    .venv/bin/python bench/redflags.py [--rounds 50]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.nlu.redflags import detect
from tests.unit.test_red_flags import EMERGENCIES, NON_EMERGENCIES


def _timed(messages: list[str], rounds: int) -> list[float]:
    samples: list[float] = []
    for _ in range(rounds):
        for text in messages:
            start = time.perf_counter()
            detect(text)
            samples.append(time.perf_counter() - start)
    return samples


def _report(label: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p99 = ordered[int(len(ordered) * 0.99) - 1]
    mean = statistics.fmean(samples)
    print(f"{label:<28} n={len(samples):>7}  mean {mean * 1e6:8.1f} us  p99 {p99 * 1e6:8.1f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()

    start = time.perf_counter()
    detect("my chest hurts")
    print(f"first call (load + compile)  {(time.perf_counter() - start) * 1e3:.1f} ms")

    table = [text for text, _rule in EMERGENCIES] + NON_EMERGENCIES
    _report("table rows (warm)", _timed(table, args.rounds))
    unseen = [f"{text} zq{n}" for n, text in enumerate(table)]  # a new word each: typo path
    _report("table rows + unknown word", _timed(unseen, 1))
    long_text = "hi, about my appointment next week, can we move it? " * 20 + "chest hurts"
    _report("1,000-char message", _timed([long_text], args.rounds))


if __name__ == "__main__":
    main()
