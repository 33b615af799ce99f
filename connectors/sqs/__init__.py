"""faasbus.connectors.sqs — SQS queues trigger the functions whose topic names the queue.

Run with ``python -m faasbus.connectors.sqs``. Polling, hand-off and deletion:
:mod:`faasbus.connectors.sqs.source`; settings: :mod:`faasbus.connectors.sqs.settings`.
"""

from faasbus.connectors.sdk import Connector
from faasbus.connectors.sqs.settings import SqsSettings, queue_name
from faasbus.connectors.sqs.source import SqsSource

__all__ = ["CONNECTOR", "SqsSettings", "SqsSource", "queue_name"]

CONNECTOR = Connector(name="sqs", settings=SqsSettings.from_env, source=SqsSource)
