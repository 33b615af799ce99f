"""``python -m faasbus.connectors.cron``: one cron connector process (run several for HA)."""

from __future__ import annotations

from faasbus.connectors.cron import CONNECTOR
from faasbus.connectors.sdk import main

if __name__ == "__main__":
    main(CONNECTOR)
