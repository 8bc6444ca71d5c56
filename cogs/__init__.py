"""discord.py cogs: thin adapters between Discord and :mod:`core`."""
