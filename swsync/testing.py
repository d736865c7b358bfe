"""pytest plugin for swsync users (placeholder until the fixtures land)."""
