"""SQS connector settings: the shared connector settings plus (OpenFaaS Pro names first)

    queue_url            (required)  the queue(s) to read: one URL or a comma list. A queue's
                                     topic is its name, the last path segment of its URL
    visibility_timeout   30s         how long a received message stays invisible to other
                                     readers; extended while its hand-off is still running
    wait_time            20s         long-poll wait of each receive (0-20 s)
    max_messages         10          messages per receive (1-10)
    endpoint_url         (none)      an SQS-compatible server (``faasbus up --sqs-endpoint-url``);
                                     else ``AWS_ENDPOINT_URL_SQS``, else ``AWS_ENDPOINT_URL``,
                                     else AWS's own endpoint for the region
    AWS_REGION           us-east-1   (or ``AWS_DEFAULT_REGION``); credentials the usual boto way
                                     (``AWS_ACCESS_KEY_ID``/..., a profile, an instance role)
    FAASBUS_SQS_MAX_BATCHES    4     received batches a queue's poller hands off concurrently
    FAASBUS_SQS_HANDOFF_TIMEOUT 5m   a message not handed off by then (the bus is down) is left
                                     in the queue: it returns after the visibility timeout and the
                                     queue's redrive policy counts the attempt

A URL is checked only for shape here; a queue that does not exist is logged and retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Self
from urllib.parse import urlsplit

from faasbus.bus import Env, SettingsError
from faasbus.connectors.sdk import ConnectorSettings

__all__ = ["SqsSettings", "queue_name"]

_MAX_VISIBILITY_S = 12 * 3600


def queue_name(url: str) -> str:
    """The queue's name: the last non-empty path segment of its URL."""
    segments = [part for part in urlsplit(url).path.split("/") if part]
    return segments[-1] if segments else ""


@dataclass(frozen=True)
class SqsSettings:
    common: ConnectorSettings = field(default_factory=ConnectorSettings)
    queue_urls: tuple[str, ...] = ()
    visibility_timeout_s: int = 30
    wait_time_s: int = 20
    max_messages: int = 10
    endpoint_url: str | None = None
    region: str = "us-east-1"
    max_batches: int = 4
    handoff_timeout_s: float = 300.0

    @property
    def queues(self) -> dict[str, str]:
        """``queue name -> URL`` (topic to URL)."""
        return {queue_name(url): url for url in self.queue_urls}

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Self:
        env = Env(environ)
        d = cls()
        urls = env.csv("queue_url")
        if not urls:
            raise SettingsError("queue_url", "", "one SQS queue URL or a comma list of them")
        for url in urls:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc or not queue_name(url):
                raise SettingsError("queue_url", url, "URLs such as https://host/account/queue")
        names = [queue_name(url) for url in urls]
        if len(set(names)) != len(names):
            raise SettingsError("queue_url", ",".join(urls), "queues with different names")
        visibility = env.duration("visibility_timeout", d.visibility_timeout_s)
        if not 1 <= visibility <= _MAX_VISIBILITY_S:
            raise SettingsError("visibility_timeout", str(visibility), "1s to 12h")
        wait = env.duration("wait_time", d.wait_time_s)
        if not 0 <= wait <= 20:
            raise SettingsError("wait_time", str(wait), "0s to 20s")
        max_messages = env.integer("max_messages", d.max_messages, minimum=1)
        if max_messages > 10:
            raise SettingsError("max_messages", str(max_messages), "an integer from 1 to 10")
        endpoint = env.optional_text("endpoint_url", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL")
        return cls(
            common=ConnectorSettings.from_env(environ),
            queue_urls=urls,
            visibility_timeout_s=max(round(visibility), 1),
            wait_time_s=round(wait),
            max_messages=max_messages,
            endpoint_url=endpoint,
            region=env.text("AWS_REGION", d.region, "AWS_DEFAULT_REGION"),
            max_batches=env.integer("FAASBUS_SQS_MAX_BATCHES", d.max_batches, minimum=1),
            handoff_timeout_s=max(env.duration("FAASBUS_SQS_HANDOFF_TIMEOUT", 300.0), 1.0),
        )
