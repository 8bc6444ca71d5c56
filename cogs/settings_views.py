"""How the settings commands look: embeds, confirmations and autocomplete choices.

Formatting only; what a setting means and whether a value is allowed is
:mod:`edge_voice.core.storage.settings`'s. Names people chose (spoken names, nicknames)
are escaped before they are shown, and every reply goes out through
:mod:`edge_voice.cogs.replies` with ``AllowedMentions.none()``, so a role shown as
``<@&id>`` renders without pinging anyone.
"""

from __future__ import annotations

from typing import Any, Final

import discord
from discord import app_commands
from discord.utils import escape_markdown

from edge_voice.core.settings_changes import unchanged_keys
from edge_voice.core.storage.settings import (
    GUILD_KEYS,
    EffectiveGuildSettings,
    SettingsChange,
    SettingsRepository,
)
from edge_voice.core.voices.catalogue import AUTOCOMPLETE_LIMIT, VoiceCatalogue, VoiceInfo
from edge_voice.core.voices.choice import VoiceChoice, VoiceSource

EMBED_COLOUR: Final = 0x5865F2
EMBED_DESCRIPTION_LIMIT: Final = 4096
"""Discord's limit for an embed description."""
LIST_BUDGET: Final = 3800
"""Characters of voice lines in one embed, leaving room for the closing hint."""

LABELS: Final = {
    "voice": "Voice",
    "rate": "Speaking rate",
    "announce_speaker": 'Say "NAME said"',
    "max_chars": "Longest message read",
    "autojoin": "Autojoin",
    "required_role": "Required role",
    "skip_prefix": "Skip prefix",
}


def locale_of(guild: discord.Guild | None) -> str | None:
    """The guild's Discord locale code (``de``, ``en-US``), if any."""
    return None if guild is None else str(guild.preferred_locale)


def source_words(choice: VoiceChoice, locale: str | None) -> str:
    """Where a voice came from, for people."""
    return {
        VoiceSource.MEMBER: "your choice",
        VoiceSource.GUILD: "the server's voice",
        VoiceSource.LOCALE: f"the server's language, {locale}",
        VoiceSource.DEFAULT: "the default voice",
        VoiceSource.CONFIG: "the bot's configured voice",
    }[choice.source]


def code(text: str) -> str:
    """``text`` as inline code (a backtick in it would end the span)."""
    return f"`{text.replace('`', 'ˋ')}`"


# -- server settings ---------------------------------------------------------


def shown_value(key: str, value: Any) -> str:
    """One server setting's value as people read it."""
    if key in ("announce_speaker", "autojoin"):
        return "on" if value else "off"
    if key == "max_chars":
        return f"{value} characters"
    if key == "required_role":
        return "none: everyone is read" if value is None else f"<@&{value}>"
    if key == "skip_prefix":
        return "none: every message is read" if value == "" else code(str(value))
    return code(str(value))


def server_voice_text(repository: SettingsRepository, guild: discord.Guild) -> str:
    """The server's voice: the one set, or what ``auto`` picks right now."""
    stored = repository.guild(guild.id).voice
    choice = repository.voice_choice(guild.id, None, locale_of(guild))
    if stored is not None and choice.source is VoiceSource.GUILD:
        return code(choice.voice)
    return f"auto: {code(choice.voice)} ({source_words(choice, locale_of(guild))})"


def server_settings_embed(repository: SettingsRepository, guild: discord.Guild) -> discord.Embed:
    """``/tts settings``: every server setting, and which ones are the defaults."""
    stored = repository.guild(guild.id)
    effective = repository.effective(guild.id)
    embed = discord.Embed(title="Text-to-speech settings", colour=EMBED_COLOUR)
    for key in GUILD_KEYS:
        if key == "voice":
            value = server_voice_text(repository, guild)
        else:
            value = shown_value(key, getattr(effective, key))
            if getattr(stored, key) is None:
                value += " (default)"
        embed.add_field(name=LABELS[key], value=value, inline=False)
    embed.set_footer(text="Change them with /tts set; each person picks a voice with /myvoice.")
    return embed


def server_change_text(
    change: SettingsChange,
    asked: tuple[str, ...],
    before: EffectiveGuildSettings,
    repository: SettingsRepository,
    guild: discord.Guild,
) -> str:
    """The confirmation of ``/tts set``: what changed (from what), and what already was."""
    after = repository.effective(guild.id)
    lines = []
    for key in change.changed:
        if key == "voice":
            now = server_voice_text(repository, guild)
            was = code(change.before.voice) if change.before.voice else "auto"
            lines.append(f"• {LABELS[key]}: {now} (was {was})")
        else:
            was = shown_value(key, getattr(before, key))
            lines.append(f"• {LABELS[key]}: {shown_value(key, getattr(after, key))} (was {was})")
    same = [LABELS[key] for key in unchanged_keys(change, asked)]
    if not lines:
        return "Nothing changed: " + ", ".join(same) + " already had that value."
    text = "✅ Changed:\n" + "\n".join(lines)
    if same:
        text += "\nAlready set: " + ", ".join(same) + "."
    return text


# -- a person's settings -------------------------------------------------------


def my_voice_text(repository: SettingsRepository, member: discord.Member) -> str:
    """What ``/myvoice`` shows: the voice and name this person is spoken with here."""
    guild = member.guild
    stored = repository.member(guild.id, member.id)
    choice = repository.voice_choice(guild.id, member.id, locale_of(guild))
    voice = f"Your voice here: {code(choice.voice)} ({source_words(choice, locale_of(guild))})."
    if stored.name:
        name = f'You are called "{escape_markdown(stored.name)}".'
    else:
        name = f'You are called by your display name, "{escape_markdown(member.display_name)}".'
    return f"{voice}\n{name}"


def member_change_text(
    change: SettingsChange, reset: bool, repository: SettingsRepository, member: discord.Member
) -> str:
    """The confirmation of ``/myvoice`` with options: what changed, then the result."""
    if reset:
        head = "✅ Forgot your voice and name here." if change.changed else "Nothing to forget."
    elif change.changed:
        head = "✅ Changed your " + " and ".join(change.changed) + "."
    else:
        head = "Nothing changed: that is already how you are set."
    return f"{head}\n{my_voice_text(repository, member)}"


# -- the voice list ------------------------------------------------------------


def voice_line(voice: VoiceInfo) -> str:
    """One voice in ``/voices``: its name, gender and where it is from."""
    described = voice.label.split(" · ", 1)[1] if " · " in voice.label else voice.gender
    return f"{code(voice.short_name)} · {described}"


def voices_embed(catalogue: VoiceCatalogue, language: str) -> discord.Embed:
    """``/voices language:``: the voices of a language (``de``) or locale (``de-AT``),
    as many as fit one embed, then how many more and how to narrow the list."""
    voices = sorted(catalogue.voices_for(language), key=lambda v: (v.locale, v.short_name))
    wanted = language.strip()
    if not voices:
        embed = languages_embed(catalogue)
        embed.title = f"No voices for {code(wanted[:20])}"
        return embed
    lines: list[str] = []
    used = 0
    for voice in voices:
        line = voice_line(voice)
        if used + len(line) + 1 > LIST_BUDGET:
            break
        lines.append(line)
        used += len(line) + 1
    left = len(voices) - len(lines)
    if left:
        locales = sorted({v.locale for v in voices})
        lines.append(f"…and {left} more; filter with language: (e.g. {', '.join(locales[:3])}).")
    embed = discord.Embed(
        title=f"{len(voices)} voices for {wanted}",
        description="\n".join(lines)[:EMBED_DESCRIPTION_LIMIT],
        colour=EMBED_COLOUR,
    )
    embed.set_footer(text="Pick one with /myvoice voice: (or /tts set voice: for the server).")
    return embed


def languages_embed(catalogue: VoiceCatalogue) -> discord.Embed:
    """``/voices`` without a language: every language and how many voices it has."""
    counts = [
        f"{language} ({len(catalogue.voices_for(language))})" for language in catalogue.languages()
    ]
    description = ", ".join(counts)
    embed = discord.Embed(
        title=f"{len(catalogue)} voices in {len(counts)} languages",
        description=description[:EMBED_DESCRIPTION_LIMIT],
        colour=EMBED_COLOUR,
    )
    embed.set_footer(text="List a language's voices with /voices language:de (or de-AT).")
    return embed


# -- autocomplete ----------------------------------------------------------------


def voice_choices(
    catalogue: VoiceCatalogue, current: str, locale: str | None, *, auto_means: str
) -> list[app_commands.Choice[str]]:
    """Autocomplete for a ``voice`` option: catalogue matches, the guild's locale first,
    with ``auto`` (described as ``auto_means``) offered while it matches what was typed."""
    choices = []
    needle = current.strip().lower()
    limit = AUTOCOMPLETE_LIMIT
    if "auto".startswith(needle):
        choices.append(app_commands.Choice(name=f"auto: {auto_means}"[:100], value="auto"))
        limit -= 1
    for voice in catalogue.autocomplete(current, limit=limit, prefer_locale=locale):
        choices.append(app_commands.Choice(name=voice.label, value=voice.short_name))
    return choices


def language_choices(catalogue: VoiceCatalogue, current: str) -> list[app_commands.Choice[str]]:
    """Autocomplete for ``/voices language:``: languages, then locales, that start with it."""
    needle = current.strip().lower()
    matches = [code_ for code_ in catalogue.languages() if code_.startswith(needle)]
    matches += [loc for loc in catalogue.locales() if loc.lower().startswith(needle)]
    return [app_commands.Choice(name=m, value=m) for m in matches[:AUTOCOMPLETE_LIMIT]]
