"""faasbus.connectors.sdk — what every connector shares: the topic map, the publisher, the runner.

A connector (cron, nats, kafka, sqs) is a package with the same modules: ``settings.py`` (its
frozen settings dataclass, the shared :class:`ConnectorSettings` as ``common``), ``source.py``
(its source: an async context manager that turns what it reads into :class:`SourceEvent` s and
gives them to :meth:`Publisher.hand_off`, acknowledging its source only after that returns),
``__main__.py`` (``main(CONNECTOR)``) and ``__init__.py`` (its façade, exporting ``CONNECTOR``).
"""

from faasbus.connectors.sdk.errors import ConnectorError, ScheduleError, SourceUnavailable
from faasbus.connectors.sdk.events import FunctionRef, SourceEvent, invocation_ids
from faasbus.connectors.sdk.follow import TopicFollower
from faasbus.connectors.sdk.metrics import UNROUTED, ConnectorMetrics, serve_metrics
from faasbus.connectors.sdk.publisher import Handoff, Publisher, Sent
from faasbus.connectors.sdk.results import CallResult, wait_for_result
from faasbus.connectors.sdk.runner import (
    Connector,
    ConnectorContext,
    Source,
    main,
    run_connector,
)
from faasbus.connectors.sdk.settings import ConnectorSettings, HasCommonSettings
from faasbus.connectors.sdk.tasks import TaskSet, cancel_and_wait
from faasbus.connectors.sdk.topics import TOPIC_ANNOTATION, TopicMap, build_topic_map, parse_topics

__all__ = [
    "TOPIC_ANNOTATION",
    "UNROUTED",
    "CallResult",
    "Connector",
    "ConnectorContext",
    "ConnectorError",
    "ConnectorMetrics",
    "ConnectorSettings",
    "FunctionRef",
    "Handoff",
    "HasCommonSettings",
    "Publisher",
    "ScheduleError",
    "Sent",
    "Source",
    "SourceEvent",
    "SourceUnavailable",
    "TaskSet",
    "TopicFollower",
    "TopicMap",
    "build_topic_map",
    "cancel_and_wait",
    "invocation_ids",
    "main",
    "parse_topics",
    "run_connector",
    "serve_metrics",
    "wait_for_result",
]
