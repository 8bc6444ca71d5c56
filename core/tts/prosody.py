"""Rate, volume and pitch strings: their form and the ranges we document.

edge-tts accepts any ``+N%`` / ``-N%`` and ``+NHz`` / ``-NHz`` and passes it on; Edge
clamps values far outside what sounds like speech, and a listener then hears neither
the setting nor a complaint. So the config, the settings and the Edge provider all hold
them to the documented ranges below (they are written in ``config.toml`` too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class ProsodyRange:
    """The documented range of one prosody value, e.g. rate from -50% to +100%."""

    name: str
    unit: str
    low: int
    high: int

    @property
    def expected(self) -> str:
        """What a valid value looks like, for error messages."""
        return (
            f'a signed {self.name} like "+10{self.unit}" from '
            f'"{self.low:+d}{self.unit}" to "{self.high:+d}{self.unit}"'
        )


RATE: Final = ProsodyRange("rate", "%", -50, 100)
VOLUME: Final = ProsodyRange("volume", "%", -50, 50)
PITCH: Final = ProsodyRange("pitch", "Hz", -50, 50)

_FORM = re.compile(r"^\s*([+-]?)\s*(\d{1,4})\s*(%|hz)\s*$", re.IGNORECASE)


class ProsodyError(ValueError):
    """A prosody value of the wrong form or outside its documented range."""

    def __init__(self, spec: ProsodyRange, got: str) -> None:
        super().__init__(f"{spec.name}: expected {spec.expected}, got {got!r}")
        self.spec = spec
        self.expected = spec.expected
        self.got = got


def normalize(spec: ProsodyRange, value: object) -> str:
    """``value`` in the exact form edge-tts wants (``"+10%"``, ``"-5Hz"``).

    Lenient about what people type (``10%``, ``+10 %``, ``-5hz``); raises
    :class:`ProsodyError` for another form, another unit or a value outside the range.
    """
    if not isinstance(value, str):
        raise ProsodyError(spec, repr(value))
    match = _FORM.match(value)
    if match is None or match.group(3).lower() != spec.unit.lower():
        raise ProsodyError(spec, value)
    number = int(match.group(2)) * (-1 if match.group(1) == "-" else 1)
    if not spec.low <= number <= spec.high:
        raise ProsodyError(spec, value)
    return f"{number:+d}{spec.unit}"


def problem(spec: ProsodyRange, value: object) -> str | None:
    """None if ``value`` is valid *and* already in edge-tts's exact form, else what is expected."""
    try:
        return None if normalize(spec, value) == value else spec.expected
    except ProsodyError:
        return spec.expected
