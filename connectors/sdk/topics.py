"""The topic map: which functions subscribe to which topic (REFERENCE.md section 4).

Every function whose annotation ``topic`` is set subscribes to each comma-separated, trimmed name
in it; matching is exact, and one topic maps to any number of functions. The map is rebuilt from
the :class:`faasbus.bus.FunctionCatalog` on each change the catalog's KV watch reports (a deploy,
update or delete reaches routing within milliseconds), and the catalog's periodic full resync
(``rebuild_interval``) repairs anything a broken watch missed. OpenFaaS connectors poll the gateway
instead and exit when listing fails; this map never exits and never blocks a hand-off.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import structlog

from faasbus.bus import FunctionCatalog, names
from faasbus.connectors.sdk.events import FunctionRef

__all__ = ["TOPIC_ANNOTATION", "TopicMap", "build_topic_map", "parse_topics"]

log = structlog.get_logger(__name__)

TOPIC_ANNOTATION = "topic"

Listener = Callable[[], None]


def parse_topics(annotation: str) -> tuple[str, ...]:
    """``" a, b ,,a"`` → ``("a", "b")``: trimmed, empty names dropped, first occurrence kept."""
    seen: dict[str, None] = {}
    for part in annotation.split(","):
        name = part.strip()
        if name:
            seen.setdefault(name, None)
    return tuple(seen)


def build_topic_map(
    functions: Iterable[tuple[FunctionRef, dict[str, str]]],
) -> dict[str, tuple[FunctionRef, ...]]:
    """``topic -> functions`` (sorted) from ``(function, annotations)`` pairs."""
    routes: dict[str, set[FunctionRef]] = {}
    for ref, found in functions:
        for topic in parse_topics(found.get(TOPIC_ANNOTATION, "")):
            routes.setdefault(topic, set()).add(ref)
    return {topic: tuple(sorted(refs)) for topic, refs in routes.items()}


class TopicMap:
    """A live ``topic -> functions`` view over a function catalog."""

    def __init__(self, catalog: FunctionCatalog) -> None:
        self._catalog = catalog
        self._routes: dict[str, tuple[FunctionRef, ...]] = {}
        self._listeners: list[Listener] = []
        catalog.on_change(self.rebuild)
        self.rebuild()

    def functions_for(self, topic: str) -> tuple[FunctionRef, ...]:
        return self._routes.get(topic, ())

    def topics(self) -> frozenset[str]:
        return frozenset(self._routes)

    def snapshot(self) -> dict[str, tuple[FunctionRef, ...]]:
        return dict(self._routes)

    def annotations(self, ref: FunctionRef) -> dict[str, str]:
        return self._catalog.annotations(ref.namespace, ref.name)

    def on_change(self, listener: Listener) -> None:
        """Call ``listener`` (synchronously) after each rebuild that changed the map."""
        self._listeners.append(listener)

    def rebuild(self) -> None:
        functions = [
            (FunctionRef(namespace, name), self._catalog.annotations(namespace, name))
            for (namespace, name), _ in self._catalog.items()
            # Names become subject tokens: a record under an invalid key is never routed to.
            if names.is_dns1123_label(namespace) and names.is_dns1123_label(name)
        ]
        routes = build_topic_map(functions)
        if routes == self._routes:
            return
        self._routes = routes
        log.debug("topic_map_rebuilt", topics=len(routes))
        for listener in self._listeners:
            try:
                listener()
            except Exception:
                log.exception("topic_map_listener_failed")
