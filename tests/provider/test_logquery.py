"""Reading logs back from FAAS_LOGS: a finished history is always returned whole."""

from __future__ import annotations

from faasbus.bus import Bus, names
from faasbus.provider.logquery import LogQuery, read_logs


async def test_history_without_tail_is_never_empty(bus: Bus, unique_name: str) -> None:
    subject = names.logs_subject(names.DEFAULT_NAMESPACE, unique_name, f"{unique_name}-a1")
    for index in range(5):
        await bus.js.publish(subject, f"line {index}".encode())
    query = LogQuery.from_query({"name": unique_name})
    # Lines pushed to the client between subscribing and asking the consumer for its state once
    # made this answer empty now and then: ask many times.
    for _ in range(30):
        lines = [line["text"] async for line in read_logs(bus.js, query)]
        assert lines == [f"line {index}" for index in range(5)]
