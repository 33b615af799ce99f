"""``python -m faasbus.connectors.sqs``: one SQS connector process."""

from __future__ import annotations

from faasbus.connectors.sdk import main
from faasbus.connectors.sqs import CONNECTOR

if __name__ == "__main__":
    main(CONNECTOR)
