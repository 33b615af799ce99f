"""``python -m faasbus.connectors.kafka``: one Kafka connector process (a consumer group member)."""

from __future__ import annotations

from faasbus.connectors.kafka import CONNECTOR
from faasbus.connectors.sdk import main

if __name__ == "__main__":
    main(CONNECTOR)
