"""What a message says aloud and in a text post: cleanup, emoji names, words, the policy.

Pure: no I/O, no Discord, no asyncio. :mod:`.policy` is the entry point for a message;
:mod:`.speakable` holds the synthesis service's guard for raw text.
"""
