"""``python -m faasbus.watchdog`` and the ``faasbus-watchdog`` script; the work is in `runner`."""

from faasbus.watchdog.runner import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
