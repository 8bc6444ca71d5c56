"""Text-to-speech: input checks, providers (Edge, offline), and the guarded service."""
