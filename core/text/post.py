"""Names in a text post (``🔇 NAME: text``): shown as written, never as a mention.

A post is sent with ``AllowedMentions.none()``, so nothing in it can ping; but a raw
``<@id>`` still renders as that member's mention pill, and a nickname that is one
(``<@ADMIN_ID>``) would impersonate. Names lose their mention syntax and their markdown.
"""

from __future__ import annotations

import re

from edge_voice.core.text.cleanup import defuse_mentions
from edge_voice.core.text.emoji_names import drop_stray_components
from edge_voice.core.text.speakable import EMOJI_COMPONENTS, strip_invisible

__all__ = ["escape_markdown", "name_for_post"]

# What discord.utils.escape_markdown escapes, plus "[" (a masked link needs it); every
# ASCII punctuation character may be escaped in Discord, so a backslash is never shown.
_MARKUP = re.compile(r"[_\\~|*`\[]|^(?:>(?:>>)?(?=\s)|#{1,3}|-#)", re.MULTILINE)


def escape_markdown(text: str) -> str:
    """``text`` with a backslash before every character Discord would read as markdown."""
    return _MARKUP.sub(lambda match: "\\" + match.group(), text)


def name_for_post(name: str, fallback: str = "someone") -> str:
    """A display name for a text post: invisible characters and line breaks gone (emoji
    kept whole), mentions defused, markdown escaped; ``fallback`` when nothing is left."""
    visible = strip_invisible(name, keep=EMOJI_COMPONENTS)
    if not EMOJI_COMPONENTS.isdisjoint(visible):
        visible = drop_stray_components(visible)
    plain = " ".join(visible.split())
    return escape_markdown(defuse_mentions(plain)) if plain else fallback
