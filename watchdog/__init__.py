"""faasbus component (filled in by its issue)."""
