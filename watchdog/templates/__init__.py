"""Function templates served by the watchdog python mode."""
