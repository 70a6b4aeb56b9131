"""What differs between the settings an artifact was made for and a run's, in a few words.

An artifact made for other settings is refused naming both sides. Printed whole, the two records
(a GAN's architecture, a pair cache's photo lists) ran to a kilobyte in which the one value that
differs was hard to find; these name only the keys whose values differ, each value shortened.
"""

from __future__ import annotations

import reprlib
from collections.abc import Mapping
from typing import Any

SHOWN = 4  # differing keys named in a message; the rest are counted
_ABSENT = object()
_SHORT = reprlib.Repr()
_SHORT.maxlist = _SHORT.maxtuple = _SHORT.maxdict = 4
_SHORT.maxstring = _SHORT.maxother = 48


def differences(theirs: Any, ours: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    """(dotted key, their value, our value) wherever the two differ, below ``prefix`` (may be
    empty): mappings are compared key by key, anything else as a whole."""
    if isinstance(theirs, Mapping) and isinstance(ours, Mapping):
        found = []
        for key in sorted(set(theirs) | set(ours), key=str):
            found += differences(theirs.get(key, _ABSENT), ours.get(key, _ABSENT),
                                 f"{prefix}.{key}" if prefix else str(key))
        return found
    return [] if theirs == ours else [(prefix, theirs, ours)]


def describe(found: list[tuple[str, Any, Any]], side: int) -> str:
    """One side (1: theirs, 2: ours) of :func:`differences` as ``key = value, ...``."""
    shown = ", ".join(f"{entry[0]} = {_value(entry[side])}" for entry in found[:SHOWN])
    more = len(found) - SHOWN
    return shown + (f" (and {more} more)" if more > 0 else "")


def _value(value: Any) -> str:
    return "(absent)" if value is _ABSENT else _SHORT.repr(value)
