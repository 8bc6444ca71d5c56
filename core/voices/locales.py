"""Which Edge voice speaks for a Discord locale when ``[speech] voice = "auto"``.

Discord gives every guild a ``preferred_locale`` (``de``, ``en-US``, ``es-419``, ...).
:data:`DISCORD_LOCALE_VOICES` maps each of Discord's locale codes to an Edge voice and,
where we chose them by hand, its backup voices; other locales are matched against the
catalogue by :func:`core.voices.choice.locale_chain`. Pure data, no imports of our own,
so :mod:`core.config` can use it.
"""

from __future__ import annotations

from typing import Final

AUTO: Final = "auto"
"""``[speech] voice`` value that picks the voice from the guild's locale."""

AUTO_DEFAULT_CHAIN: Final = ("de-DE-KillianNeural", "de-DE-ConradNeural")
"""The voice chain of ``voice = "auto"`` when no locale matches (and for speech with no
guild, such as ``make check``): the seed project's German voices, so a bot that spoke
German before speaks German still."""

DISCORD_LOCALE_VOICES: Final[dict[str, tuple[str, ...]]] = {
    "id": ("id-ID-GadisNeural",),
    "da": ("da-DK-ChristelNeural",),
    "de": AUTO_DEFAULT_CHAIN,
    "en-GB": ("en-GB-SoniaNeural",),
    "en-US": ("en-US-AriaNeural",),
    "es-ES": ("es-ES-ElviraNeural",),
    "es-419": ("es-MX-DaliaNeural", "es-MX-JorgeNeural", "es-US-PalomaNeural"),
    "fr": ("fr-FR-DeniseNeural",),
    "hr": ("hr-HR-GabrijelaNeural",),
    "it": ("it-IT-ElsaNeural",),
    "lt": ("lt-LT-OnaNeural",),
    "hu": ("hu-HU-NoemiNeural",),
    "nl": ("nl-NL-ColetteNeural",),
    "no": ("nb-NO-PernilleNeural",),
    "pl": ("pl-PL-ZofiaNeural",),
    "pt-BR": ("pt-BR-FranciscaNeural",),
    "ro": ("ro-RO-AlinaNeural",),
    "fi": ("fi-FI-NooraNeural",),
    "sv-SE": ("sv-SE-SofieNeural",),
    "vi": ("vi-VN-HoaiMyNeural",),
    "tr": ("tr-TR-EmelNeural",),
    "cs": ("cs-CZ-VlastaNeural",),
    "el": ("el-GR-AthinaNeural",),
    "bg": ("bg-BG-KalinaNeural",),
    "ru": ("ru-RU-SvetlanaNeural",),
    "uk": ("uk-UA-PolinaNeural",),
    "hi": ("hi-IN-SwaraNeural",),
    "th": ("th-TH-PremwadeeNeural",),
    "zh-CN": ("zh-CN-XiaoxiaoNeural",),
    "ja": ("ja-JP-NanamiNeural",),
    "zh-TW": ("zh-TW-HsiaoChenNeural",),
    "ko": ("ko-KR-SunHiNeural",),
}
"""Every locale code Discord uses (``discord.Locale``; a test keeps them equal), as
Discord lists them, to the Edge voice that speaks it and any hand-picked backups. A chain
of one voice gets the other voices of its locale as backups."""
