"""The bot's SQLite store: one file, versioned schema, settings and sessions on top."""
