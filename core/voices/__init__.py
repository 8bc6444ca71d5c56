"""Edge's voices: the catalogue (shipped snapshot, refreshed copy), locale defaults, choice."""
