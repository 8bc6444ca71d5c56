"""Discord-free core of the TTS plugin: breaker, synthesis, audio, diagnostics."""
