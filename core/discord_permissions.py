"""Discord's permission names, without importing discord (``core`` never does).

``[discord] admin_permission`` must be one of these, or the admin cog fails to load and
``/tts`` vanishes. The tuple mirrors ``discord.Permissions.VALID_FLAGS`` of the pinned
discord.py (2.7.1); a test compares the two, so an upgrade that adds or renames a
permission fails there instead of in a server.
"""

from __future__ import annotations

from typing import Final

DISCORD_PERMISSIONS: Final[tuple[str, ...]] = (
    "add_reactions",
    "administrator",
    "attach_files",
    "ban_members",
    "bypass_slowmode",
    "change_nickname",
    "connect",
    "create_events",
    "create_expressions",
    "create_instant_invite",
    "create_polls",
    "create_private_threads",
    "create_public_threads",
    "deafen_members",
    "embed_links",
    "external_emojis",
    "external_stickers",
    "kick_members",
    "manage_channels",
    "manage_emojis",
    "manage_emojis_and_stickers",
    "manage_events",
    "manage_expressions",
    "manage_guild",
    "manage_messages",
    "manage_nicknames",
    "manage_permissions",
    "manage_roles",
    "manage_threads",
    "manage_webhooks",
    "mention_everyone",
    "moderate_members",
    "move_members",
    "mute_members",
    "pin_messages",
    "priority_speaker",
    "read_message_history",
    "read_messages",
    "request_to_speak",
    "send_messages",
    "send_messages_in_threads",
    "send_polls",
    "send_tts_messages",
    "send_voice_messages",
    "set_voice_channel_status",
    "speak",
    "stream",
    "use_application_commands",
    "use_embedded_activities",
    "use_external_apps",
    "use_external_emojis",
    "use_external_sounds",
    "use_external_stickers",
    "use_soundboard",
    "use_voice_activation",
    "view_audit_log",
    "view_channel",
    "view_creator_monetization_analytics",
    "view_guild_insights",
)
