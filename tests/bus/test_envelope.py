"""The envelope survives a real trip through FAAS_INVOKE unchanged."""

from __future__ import annotations

import pytest

from faasbus.bus import Bus, names
from faasbus.bus.envelope import Invocation


async def test_round_trip_through_jetstream(bus: Bus, unique_name: str) -> None:
    sent = Invocation(
        call_id=f"c-{unique_name}",
        namespace=names.DEFAULT_NAMESPACE,
        function=unique_name,
        body=b"\x00binary\xffbody",
        method="PUT",
        path="/orders/7",
        query="a=1&b=2",
        content_type="application/octet-stream",
        callback_url="http://127.0.0.1:9/cb",
        source="kafka",
        topic="orders",
        msg_id="kafka:orders:0:42",
        headers=Invocation.forwardable(
            [("X-Custom", "1"), ("X-Custom", "2"), ("Connection", "close"), ("Host", "h")]
        ),
    )
    ack = await bus.js.publish(sent.subject, sent.body, headers=sent.nats_headers())
    msg = await bus.js.get_msg(names.INVOKE_STREAM, ack.seq)
    got = Invocation.from_message(msg.headers, msg.data or b"")
    assert got.body == sent.body
    assert got.headers == (("X-Custom", "1, 2"),)
    assert got == Invocation(**{**sent.__dict__, "headers": (("X-Custom", "1, 2"),)})


async def test_a_retried_publish_with_the_same_call_id_is_dropped(
    bus: Bus, unique_name: str
) -> None:
    call = Invocation(
        call_id=f"same-{unique_name}", namespace="openfaas-fn", function=unique_name, body=b"x"
    )
    first = await bus.js.publish(call.subject, call.body, headers=call.nats_headers())
    second = await bus.js.publish(call.subject, call.body, headers=call.nats_headers())
    assert second.duplicate
    assert second.seq == first.seq


def test_missing_header_is_named() -> None:
    with pytest.raises(ValueError, match="Faas-Function"):
        Invocation.from_message({"Faas-Call-Id": "x", "Faas-Namespace": "n"}, b"")
