"""``python -m faasbus.connectors.nats``: one NATS subject connector process."""

from __future__ import annotations

from faasbus.connectors.nats import CONNECTOR
from faasbus.connectors.sdk import main

if __name__ == "__main__":
    main(CONNECTOR)
