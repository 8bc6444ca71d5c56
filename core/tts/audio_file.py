"""An utterance written to a file, whole or not at all."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge_voice.core.tts.provider import VoiceSettings
from edge_voice.core.tts.service import TTSService


async def synthesize_to_file(
    service: TTSService, text: str, path: str | Path, settings: VoiceSettings | None = None
) -> Path:
    """Synthesize ``text`` through ``service`` and write it to ``path``, in the
    provider's audio format; ``path`` appears only once the audio is complete."""
    audio = await service.synthesize(text, settings)
    target = Path(path)
    # Written beside the target and renamed over it: a reader never sees half a file.
    partial = target.with_name(target.name + ".partial")
    await asyncio.to_thread(partial.write_bytes, audio)
    await asyncio.to_thread(partial.replace, target)
    return target
