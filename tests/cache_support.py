"""Keys and packet lists shared by the cache tests."""

from __future__ import annotations

import dataclasses

from edge_voice.core.cache import CacheKey

HELLO = CacheKey("edge", "en-US-AriaNeural", "+0%", "+0%", "+0Hz", "Hello")


def key(text: str) -> CacheKey:
    """:data:`HELLO` with another text."""
    return dataclasses.replace(HELLO, text=text)


def packets_of(size: int, fill: int = 1, count: int = 1) -> list[bytes]:
    """``count`` packets of ``size`` bytes, every byte ``fill``."""
    return [bytes([fill % 256]) * size for _ in range(count)]
