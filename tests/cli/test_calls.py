"""``faasbus calls``, ``faasbus dlq`` and ``invoke --async --wait`` on the wire; one-line errors.

The gateway is the recording HTTP server of conftest answering like ``gateway/async_path.py``.
"""

from __future__ import annotations

import base64
import itertools
import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from faasbus.bus import free_port

from .conftest import FakeGateway, Recorded, Reply
from .test_commands import basic, one_line_error, write_credentials

RunCli = Callable[..., Result]

NOW = 1_700_000_000.0

RECORD: dict[str, Any] = {
    "call_id": "c1",
    "function": "echo",
    "namespace": "openfaas-fn",
    "state": "succeeded",
    "source": "gateway",
    "topic": "",
    "attempts": 2,
    "max_attempts": 3,
    "status_code": 200,
    "error": "",
    "queued_at": NOW,
    "started_at": NOW + 0.25,
    "finished_at": NOW + 1.5,
    "duration_s": 1.25,
    "callback_url": "http://127.0.0.1:9/cb",
    "callback_state": "delivered",
    "callback_attempts": 1,
    "callback_status": 200,
    "result_headers": {"Content-Type": "text/plain"},
    "result_size": 5,
    "cancel_requested": False,
    "stream_seq": 12,
}

LETTER: dict[str, Any] = {
    "seq": 7,
    "callId": "c9",
    "function": "flaky",
    "namespace": "team-a",
    "kind": "invocation",
    "reason": "retries exhausted",
    "lastStatus": 500,
    "attempts": 3,
    "deadAt": NOW,
    "source": "gateway",
    "callbackUrl": "",
    "size": 5,
}


def record(**changes: Any) -> dict[str, Any]:
    return {**RECORD, **changes}


def stored(body: bytes, status: int = 200, *, truncated: bool = False) -> dict[str, Any]:
    try:
        text, encoding = body.decode(), "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(body).decode(), "base64"
    return {
        "callId": "c1",
        "status": status,
        "headers": {},
        "body": text,
        "bodyEncoding": encoding,
        "size": len(body) * (2 if truncated else 1),
        "truncated": truncated,
    }


@pytest.fixture
def gw(fake_gateway: FakeGateway, state_dir: Path) -> FakeGateway:
    write_credentials(state_dir)
    return fake_gateway


def requests_of(gateway: FakeGateway) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in gateway.requests]


# ---------------------------------------------------------------- calls show


def test_calls_show_summary_and_json(run_cli: RunCli, gw: FakeGateway) -> None:
    gw.on("GET", "/system/calls/c1", Reply(200, RECORD))
    result = run_cli("calls", "show", "c1", "--gateway", gw.url)
    assert result.exit_code == 0, result.output
    request = gw.requests[-1]
    assert (request.method, request.path) == ("GET", "/system/calls/c1")
    assert request.headers["Authorization"] == basic("admin", "s3cret")
    lines = {
        line.split(":", 1)[0]: line.split(":", 1)[1].strip() for line in result.stdout.splitlines()
    }
    assert lines["State"] == "succeeded"
    assert lines["Function"] == "echo.openfaas-fn"
    assert lines["Attempts"] == "2 of 3"
    assert lines["Status"] == "200"
    assert lines["Queued"] == "2023-11-14T22:13:20.000Z"
    assert lines["Waited"] == "250 ms"
    assert lines["Duration"] == "1.25 s"
    assert lines["Callback"] == "delivered (200) after 1 attempt to http://127.0.0.1:9/cb"
    assert lines["Result"] == "5 bytes (faasbus calls result c1)"
    assert "Error" not in lines
    result = run_cli("calls", "show", "c1", "--json", "--gateway", gw.url)
    assert json.loads(result.stdout) == RECORD


def test_calls_show_failed_call_names_the_error(run_cli: RunCli, gw: FakeGateway) -> None:
    failed = record(
        state="retrying",
        status_code=503,
        error="upstream timeout after 5s",
        finished_at=0,
        duration_s=0,
        callback_state="none",
        cancel_requested=True,
    )
    gw.on("GET", "/system/calls/c1", Reply(200, failed))
    result = run_cli("calls", "show", "c1", "--gateway", gw.url)
    assert result.exit_code == 0, result.output
    assert "Error:            upstream timeout after 5s" in result.stdout
    assert "Cancel requested: yes" in result.stdout
    assert "Callback:         none" in result.stdout
    assert "Finished" not in result.stdout


def test_calls_errors_are_one_line(run_cli: RunCli, gw: FakeGateway) -> None:
    line = one_line_error(run_cli("calls", "show", "ghost", "--gateway", gw.url))
    assert line == "faasbus: call ghost not found"
    gw.on("GET", "/system/calls/c1", Reply(401, "Unauthorized\n"))
    line = one_line_error(run_cli("calls", "show", "c1", "--gateway", gw.url))
    assert "401" in line
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["calls", "show", "c1"], ["calls", "cancel", "c1"], ["dlq", "list"]):
        line = one_line_error(run_cli(*args, "--gateway", url))
        assert f"cannot reach the gateway at {url}" in line
    # Ids are quoted into the path, never able to reach another route.
    one_line_error(run_cli("calls", "show", "a/b?c", "--gateway", gw.url))
    assert gw.requests[-1].path == "/system/calls/a%2Fb%3Fc"


# ---------------------------------------------------------------- calls result


def test_calls_result_prints_text_and_binary_bodies(run_cli: RunCli, gw: FakeGateway) -> None:
    gw.on("GET", "/system/calls/c1/result", Reply(200, stored(b"hello\n")))
    result = run_cli("calls", "result", "c1", "--gateway", gw.url)
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == b"hello\n"
    assert requests_of(gw) == [("GET", "/system/calls/c1/result")]
    binary = bytes(range(256))
    gw.on("GET", "/system/calls/c1/result", Reply(200, stored(binary, 500)))
    result = run_cli("calls", "result", "c1", "--gateway", gw.url)
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == binary
    result = run_cli("calls", "result", "c1", "--json", "--gateway", gw.url)
    assert json.loads(result.stdout)["status"] == 500
    gw.on("GET", "/system/calls/c1/result", Reply(200, stored(b"part", truncated=True)))
    result = run_cli("calls", "result", "c1", "--gateway", gw.url)
    assert result.exit_code == 0
    assert result.stdout_bytes == b"part"
    assert "truncated" in result.stderr
    assert "8 bytes in all" in result.stderr


def test_calls_result_missing(run_cli: RunCli, gw: FakeGateway) -> None:
    gw.on("GET", "/system/calls/c1/result", Reply(404, "call c1 has no result yet\n"))
    gw.on("GET", "/system/calls/c1", Reply(200, record(state="running")))
    line = one_line_error(run_cli("calls", "result", "c1", "--gateway", gw.url))
    assert line == "faasbus: call c1 has no result yet (state running)"
    gw.on("GET", "/system/calls/c1", Reply(200, record(state="succeeded")))
    line = one_line_error(run_cli("calls", "result", "c1", "--gateway", gw.url))
    assert line == "faasbus: call c1 has no result (state succeeded)"
    line = one_line_error(run_cli("calls", "result", "ghost", "--gateway", gw.url))
    assert line == "faasbus: call ghost not found"


# ---------------------------------------------------------------- calls cancel


def test_calls_cancel(run_cli: RunCli, gw: FakeGateway) -> None:
    gw.on("DELETE", "/async-function/c1", Reply(202, "", {"X-Call-Id": "c1"}))
    result = run_cli("calls", "cancel", "c1", "--gateway", gw.url)
    assert result.exit_code == 0, result.output
    assert result.stdout == "Cancelling call c1\n"
    assert requests_of(gw) == [("DELETE", "/async-function/c1")]
    gw.on("DELETE", "/async-function/c2", Reply(409, "call c2 already succeeded\n"))
    line = one_line_error(run_cli("calls", "cancel", "c2", "--gateway", gw.url))
    assert line == "faasbus: call c2 already succeeded: nothing to cancel"
    line = one_line_error(run_cli("calls", "cancel", "ghost", "--gateway", gw.url))
    assert line == "faasbus: call ghost not found"


# ---------------------------------------------------------------- dlq list / show / remove


def test_dlq_list_table_json_and_filters(run_cli: RunCli, gw: FakeGateway) -> None:
    second = {**LETTER, "seq": 9, "callId": "c10", "kind": "callback", "lastStatus": 200}
    gw.on("GET", "/system/dlq", Reply(200, [LETTER, second]))
    result = run_cli("dlq", "list", "--gateway", gw.url)
    assert result.exit_code == 0, result.output
    assert gw.requests[-1].path == "/system/dlq"
    assert gw.requests[-1].headers["Authorization"] == basic("admin", "s3cret")
    header, *rows = result.stdout.strip().splitlines()
    assert header.split() == [
        *("SEQ", "CALL", "ID", "FUNCTION", "KIND", "ATTEMPTS", "STATUS", "DEAD", "AT", "REASON")
    ]
    assert rows[0].split() == [
        *("7", "c9", "flaky.team-a", "invocation", "3", "500", "2023-11-14T22:13:20Z"),
        *("retries", "exhausted"),
    ]
    assert rows[1].split()[:4] == ["9", "c10", "flaky.team-a", "callback"]
    result = run_cli(
        "dlq", "list", "--function", "flaky", "-n", "team-a", "--limit", "5", "--json",
        "--gateway", gw.url,
    )  # fmt: skip
    assert json.loads(result.stdout) == [LETTER, second]
    assert gw.requests[-1].path == "/system/dlq?function=flaky&namespace=team-a&limit=5"
    gw.on("GET", "/system/dlq", Reply(200, []))
    result = run_cli("dlq", "list", "--function", "flaky", "--gateway", gw.url)
    assert result.stdout == "No dead letters of function flaky\n"
    assert run_cli("dlq", "list", "--limit", "0", "--gateway", gw.url).exit_code == 2


def test_dlq_show(run_cli: RunCli, gw: FakeGateway) -> None:
    entry = {**LETTER, "body": "input", "bodyEncoding": "utf-8", "headers": {"X-Trace": "42"}}
    gw.on("GET", "/system/dlq/7", Reply(200, entry))
    result = run_cli("dlq", "show", "7", "--gateway", gw.url)
    assert result.exit_code == 0, result.output
    assert requests_of(gw) == [("GET", "/system/dlq/7")]
    text = result.stdout
    for expected in (
        "Reason:      retries exhausted",
        "Last status: 500",
        "Function:    flaky.team-a",
        "Headers:     X-Trace: 42",
        "Size:        5 bytes",
    ):
        assert expected in text
    assert text.endswith("\n\ninput\n")
    assert json.loads(run_cli("dlq", "show", "7", "--json", "--gateway", gw.url).stdout) == entry
    binary = {**entry, "body": base64.b64encode(b"\xff\x00").decode(), "bodyEncoding": "base64"}
    gw.on("GET", "/system/dlq/8", Reply(200, binary))
    result = run_cli("dlq", "show", "8", "--gateway", gw.url)
    assert "Body is binary" in result.stdout
    line = one_line_error(run_cli("dlq", "show", "99", "--gateway", gw.url))
    assert line == "faasbus: dead letter 99 not found"
    assert run_cli("dlq", "show", "x", "--gateway", gw.url).exit_code == 2


def test_dlq_remove(run_cli: RunCli, gw: FakeGateway) -> None:
    gw.on("DELETE", "/system/dlq/7", Reply(202))
    result = run_cli("dlq", "remove", "7", "--gateway", gw.url)
    assert result.exit_code == 0, result.output
    assert result.stdout == "Removed dead letter 7\n"
    assert requests_of(gw) == [("DELETE", "/system/dlq/7")]
    line = one_line_error(run_cli("dlq", "remove", "8", "--gateway", gw.url))
    assert line == "faasbus: dead letter 8 not found"


# ---------------------------------------------------------------- dlq redrive


def test_dlq_redrive_bodies_and_output(run_cli: RunCli, gw: FakeGateway) -> None:
    answers = {"redriven": 2, "callIds": ["c9", "c10"]}
    gw.on("POST", "/system/dlq/redrive", Reply(202, answers))
    result = run_cli("dlq", "redrive", "7", "--gateway", gw.url)
    assert result.exit_code == 0, result.output
    assert gw.requests[-1].json() == {"seq": 7}
    assert gw.requests[-1].headers["Content-Type"] == "application/json"
    assert result.stdout.splitlines() == ["Redriven 2 dead letters; call ids:", "c9", "c10"]
    result = run_cli("dlq", "redrive", "--function", "flaky", "-n", "team-a", "--gateway", gw.url)
    assert result.exit_code == 0, result.output
    assert gw.requests[-1].json() == {"function": "flaky", "namespace": "team-a"}
    result = run_cli(
        "dlq", "redrive", "--since", "2024-01-01T00:00:00Z", "--until", "10m", "--function",
        "flaky", "--json", "--gateway", gw.url,
    )  # fmt: skip
    assert json.loads(result.stdout) == answers
    body = gw.requests[-1].json()
    assert body["function"] == "flaky"
    assert body["since"] == "2024-01-01T00:00:00Z"
    until = datetime.fromisoformat(body["until"]).timestamp()
    assert abs(until - (time.time() - 600)) < 60
    gw.on("POST", "/system/dlq/redrive", Reply(202, {"redriven": 0, "callIds": []}))
    result = run_cli("dlq", "redrive", "--since", "1h", "--gateway", gw.url)
    assert result.stdout == "Nothing to redrive: no dead letter matches\n"
    assert set(gw.requests[-1].json()) == {"since"}


def test_dlq_redrive_refusals(run_cli: RunCli, gw: FakeGateway) -> None:
    for args in (
        [],
        ["7", "--function", "flaky"],
        ["7", "--since", "1h"],
        ["--since", "yesterday"],
        ["0"],
    ):
        result = run_cli("dlq", "redrive", *args, "--gateway", gw.url)
        assert result.exit_code == 2, (args, result.output)
    assert gw.requests == []
    line = one_line_error(run_cli("dlq", "redrive", "42", "--gateway", gw.url))
    assert line == "faasbus: dead letter 42 not found"
    gw.on("POST", "/system/dlq/redrive", Reply(400, "function must be a valid name\n"))
    line = one_line_error(run_cli("dlq", "redrive", "--function", "Bad_Name", "--gateway", gw.url))
    assert "400" in line
    assert "function must be a valid name" in line


# ---------------------------------------------------------------- dlq purge


def test_dlq_purge_with_yes(run_cli: RunCli, gw: FakeGateway) -> None:
    gw.on("DELETE", "/system/dlq", Reply(202))
    result = run_cli("dlq", "purge", "--function", "flaky", "--yes", "--gateway", gw.url)
    assert result.exit_code == 0, result.output
    assert requests_of(gw) == [("DELETE", "/system/dlq?function=flaky")]
    assert result.stdout == "Purged dead letters of function flaky\n"
    result = run_cli("dlq", "purge", "-y", "--gateway", gw.url)
    assert result.exit_code == 0, result.output
    assert requests_of(gw)[-1] == ("DELETE", "/system/dlq")
    assert result.stdout == "Purged dead letters in all namespaces\n"


def test_dlq_purge_asks_first(run_cli: RunCli, gw: FakeGateway) -> None:
    gw.on("GET", "/system/dlq", Reply(200, [LETTER, {**LETTER, "seq": 8}]))
    gw.on("DELETE", "/system/dlq", Reply(202))
    args = ("dlq", "purge", "-n", "team-a", "--gateway", gw.url)
    result = run_cli(*args, input="n\n")
    line = one_line_error(result)
    assert "not confirmed" in line
    assert "Delete 2 dead letters in namespace team-a for good? [y/N]" in result.stdout
    assert requests_of(gw) == [("GET", "/system/dlq?namespace=team-a&limit=1001")]
    line = one_line_error(run_cli(*args, input=""))  # no answer at all (stdin closed)
    assert "not confirmed" in line
    assert all(r.method == "GET" for r in gw.requests)
    result = run_cli(*args, input="y\n")
    assert result.exit_code == 0, result.output
    assert requests_of(gw)[-1] == ("DELETE", "/system/dlq?namespace=team-a")
    gw.requests.clear()
    gw.on("GET", "/system/dlq", Reply(200, []))
    result = run_cli(*args)
    assert result.exit_code == 0
    assert result.stdout == "No dead letters in namespace team-a\n"
    assert requests_of(gw) == [("GET", "/system/dlq?namespace=team-a&limit=1001")]
    gw.on("GET", "/system/dlq", Reply(200, [LETTER] * 1001))
    result = run_cli("dlq", "purge", "--gateway", gw.url, input="y\n")
    assert result.exit_code == 0, result.output
    assert "Delete more than 1000 dead letters in all namespaces for good?" in result.stdout
    assert requests_of(gw)[-1] == ("DELETE", "/system/dlq")


# ---------------------------------------------------------------- invoke --async --wait


def enqueue(gateway: FakeGateway, call_id: str = "c1") -> None:
    gateway.on("POST", "/async-function/echo", Reply(202, "", {"X-Call-Id": call_id}))


def states(*sequence: dict[str, Any]) -> Callable[[Recorded], Reply]:
    """Answer each poll with the next record; the last one repeats."""
    answers = list(sequence)

    def answer(_request: Recorded) -> Reply:
        return Reply(200, answers.pop(0) if len(answers) > 1 else answers[0])

    return answer


def test_invoke_wait_polls_until_final_and_prints_the_result(
    run_cli: RunCli, gw: FakeGateway
) -> None:
    enqueue(gw)
    polled: list[float] = []
    running = record(state="running", status_code=0)

    def poll(_request: Recorded) -> Reply:
        polled.append(time.monotonic())
        done = polled[-1] - polled[0] >= 1.0
        return Reply(200, record() if done else running)

    gw.on("GET", "/system/calls/c1", poll)
    gw.on("GET", "/system/calls/c1/result", Reply(200, stored(bytes([0, 255, 10]))))
    result = run_cli(
        "invoke", "echo", "--async", "--wait", "--timeout", "20s", "--gateway", gw.url,
        input=b"payload",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == bytes([0, 255, 10])
    assert result.stderr == ""
    sent = gw.requests[0]
    assert (sent.method, sent.path, sent.body) == ("POST", "/async-function/echo", b"payload")
    assert "Authorization" not in sent.headers
    assert requests_of(gw)[-1] == ("GET", "/system/calls/c1/result")
    polls = [r for r in gw.requests if r.path == "/system/calls/c1"]
    assert all(r.headers["Authorization"] == basic("admin", "s3cret") for r in polls)
    gaps = [later - earlier for earlier, later in itertools.pairwise(polled)]
    assert 4 <= len(polled) <= 20, gaps  # short first, then growing: not a busy loop
    assert gaps[0] < 0.25
    assert max(gaps) < 0.5 + 0.35


@pytest.mark.parametrize(
    ("final", "result_reply", "expected"),
    [
        (
            record(status_code=500, state="failed", error="HTTP 500"),
            Reply(200, stored(b"boom\nmore\n", 500)),
            "faasbus: function 'echo' answered 500 (call c1): boom",
        ),
        (
            record(state="failed", status_code=0, attempts=1, error="no replica"),
            Reply(404, "call c1 has no result yet\n"),
            "faasbus: call c1 to 'echo' failed after 1 attempt: no replica",
        ),
        (
            record(state="dead", status_code=503, attempts=3, error="Service Unavailable"),
            Reply(200, stored(b"")),
            (
                "faasbus: call c1 to 'echo' is dead after 3 attempts (last status 503): "
                "Service Unavailable; see `faasbus dlq list --function echo -n openfaas-fn`"
            ),
        ),
        (
            record(state="cancelled", status_code=499),
            Reply(404, "none"),
            "faasbus: call c1 to 'echo' was cancelled",
        ),
    ],
)
def test_invoke_wait_failures_are_one_line(
    run_cli: RunCli,
    gw: FakeGateway,
    final: dict[str, Any],
    result_reply: Reply,
    expected: str,
) -> None:
    enqueue(gw)
    gw.on("GET", "/system/calls/c1", states(record(state="queued", status_code=0), final))
    gw.on("GET", "/system/calls/c1/result", result_reply)
    result = run_cli("invoke", "echo", "--async", "--wait", "--gateway", gw.url, input=b"")
    assert one_line_error(result) == expected
    assert result.exit_code == 1
    assert result.stdout == ""


def test_invoke_wait_succeeded_with_empty_body(run_cli: RunCli, gw: FakeGateway) -> None:
    enqueue(gw)
    gw.on("GET", "/system/calls/c1", Reply(200, record(status_code=204, result_size=0)))
    gw.on("GET", "/system/calls/c1/result", Reply(200, stored(b"", 204)))
    result = run_cli("invoke", "echo", "--async", "--wait", "--gateway", gw.url, input=b"")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes == b""


def test_invoke_wait_gives_up_at_the_timeout(run_cli: RunCli, gw: FakeGateway) -> None:
    enqueue(gw)
    gw.on("GET", "/system/calls/c1", Reply(200, record(state="running", status_code=0)))
    started = time.monotonic()
    result = run_cli(
        "invoke", "echo", "--async", "--wait", "--timeout", "300ms", "--gateway", gw.url, input=b""
    )
    elapsed = time.monotonic() - started
    line = one_line_error(result)
    assert line == (
        "faasbus: call c1 is still running after the --timeout; it goes on: `faasbus calls show c1`"
    )
    assert 0.25 <= elapsed < 3.0
    assert ("GET", "/system/calls/c1/result") not in requests_of(gw)


def test_invoke_wait_unknown_record_and_usage(run_cli: RunCli, gw: FakeGateway) -> None:
    enqueue(gw)
    line = one_line_error(
        run_cli("invoke", "echo", "--async", "--wait", "--gateway", gw.url, input=b"")
    )
    assert line == "faasbus: call c1 not found"
    result = run_cli("invoke", "echo", "--wait", "--gateway", gw.url, input=b"")
    assert result.exit_code == 2
    assert "--wait needs --async" in result.stderr
    result = run_cli("invoke", "echo", "--timeout", "soon", "--gateway", gw.url, input=b"")
    assert result.exit_code == 2
    assert "not a duration" in result.stderr
    # Without --wait, --async still prints only the call id.
    result = run_cli("invoke", "echo", "--async", "--gateway", gw.url, input=b"")
    assert result.stdout == "c1\n"


def test_invoke_sync_timeout_takes_a_duration(run_cli: RunCli, gw: FakeGateway) -> None:
    gw.on("POST", "/function/echo", Reply(200, "ok"))
    for timeout in ("1m", "90", "2.5s"):
        result = run_cli("invoke", "echo", "--timeout", timeout, "--gateway", gw.url, input=b"")
        assert result.exit_code == 0, result.output
        assert result.stdout == "ok"


def test_help_lists_the_new_commands(run_cli: RunCli) -> None:
    assert {"calls", "dlq"} <= set(run_cli("--help").stdout.split())
    dlq_help = run_cli("dlq", "--help").stdout
    for sub in ("list", "show", "redrive", "purge", "remove"):
        assert sub in dlq_help
    assert "--gateway" in run_cli("calls", "show", "--help").stdout
