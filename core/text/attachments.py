"""Attachments and stickers, said by kind and count: "an image", "3 files", "the sticker Hi".

Discord describes an attachment by its content type and filename; that is all the
policy needs, so the cog passes :class:`Attachment` values, not Discord objects.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import StrEnum

from edge_voice.core.text.cleanup import clean_name
from edge_voice.core.text.speakable import has_speakable_char
from edge_voice.core.text.words import ENGLISH, SpokenWords

__all__ = ["Attachment", "AttachmentKind", "describe", "kind_of"]


class AttachmentKind(StrEnum):
    """What an attachment is, as far as a listener cares."""

    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class Attachment:
    """One file attached to a message."""

    filename: str = ""
    content_type: str | None = None
    """The MIME type Discord reports (``image/png``), if any."""


# Content types are missing on old messages and some uploads: the extension decides then.
_EXTENSIONS = {
    AttachmentKind.IMAGE: {"png", "jpg", "jpeg", "gif", "webp", "bmp", "heic", "avif", "svg"},
    AttachmentKind.VIDEO: {"mp4", "mov", "webm", "mkv", "avi", "m4v"},
    AttachmentKind.AUDIO: {"mp3", "ogg", "oga", "opus", "wav", "flac", "m4a", "aac"},
}
_ORDER = (AttachmentKind.IMAGE, AttachmentKind.VIDEO, AttachmentKind.AUDIO, AttachmentKind.FILE)


def kind_of(attachment: Attachment) -> AttachmentKind:
    """The kind of ``attachment``: by content type, else by filename extension, else a file."""
    major = (attachment.content_type or "").split("/", 1)[0].strip().lower()
    for kind in (AttachmentKind.IMAGE, AttachmentKind.VIDEO, AttachmentKind.AUDIO):
        if major == kind.value:
            return kind
    extension = attachment.filename.rsplit(".", 1)[-1].lower() if "." in attachment.filename else ""
    for kind, extensions in _EXTENSIONS.items():
        if extension in extensions:
            return kind
    return AttachmentKind.FILE


def describe(
    attachments: tuple[Attachment, ...] | list[Attachment],
    stickers: tuple[str, ...] | list[str] = (),
    words: SpokenWords = ENGLISH,
    *,
    posted: bool = False,
) -> list[str]:
    """The things a message carries, in words: counted by kind (images, videos, audio,
    files, in that order), then each sticker by name. ``posted`` words stickers for a
    text post ("sticker Hi") instead of for speech ("the sticker Hi")."""
    counts = Counter(kind_of(attachment) for attachment in attachments)
    nouns = {
        AttachmentKind.IMAGE: words.image,
        AttachmentKind.VIDEO: words.video,
        AttachmentKind.AUDIO: words.audio,
        AttachmentKind.FILE: words.file,
    }
    things = [nouns[kind].counted(counts[kind]) for kind in _ORDER if counts[kind]]
    template = words.sticker_posted if posted else words.sticker
    unnamed = 0
    for sticker in stickers:
        name = clean_name(sticker, words=words)
        if has_speakable_char(name):
            things.append(template.format(name=name))
        else:
            unnamed += 1
    if unnamed:
        things.append(words.unnamed_sticker.counted(unnamed))
    return things
