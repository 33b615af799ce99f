"""faasbus.connectors — event sources that trigger functions through the bus.

``sdk/`` holds what they share (topic map from function annotations, publisher onto FAAS_INVOKE,
common runner); ``cron/`` and ``nats/`` are connectors built on it (``kafka/`` and ``sqs/`` follow
the same shape). Run one with ``python -m faasbus.connectors.<name>``.
"""

__all__: list[str] = []
