"""``faasbus calls`` and ``faasbus dlq``: what happened to an async call, and its dead letters.

Thin wrappers of the gateway's ``/system/calls`` and ``/system/dlq`` routes (REFERENCE.md section 3,
"beyond"), plus :func:`wait_and_print`, which ``faasbus invoke --async --wait`` uses to poll a call
record until it is final and print the function's response. Output: a short summary or table, or
the gateway's JSON with ``--json``; failures raise a :class:`CliError` with one line.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import click
from rich.table import Table

from faasbus.bus.settings import parse_duration
from faasbus.cli.client import GatewayClient
from faasbus.cli.context import AppContext, json_option, pass_app
from faasbus.cli.errors import CliError, GatewayError, NotFoundError
from faasbus.cli.output import console, print_json, print_pairs, write_bytes

__all__ = ["DURATION", "GROUPS", "Duration", "calls", "dlq", "time_value", "wait_and_print"]

_FINAL = frozenset({"succeeded", "failed", "dead", "cancelled"})
_FIRST_POLL_S = 0.01
_MAX_POLL_S = 0.5
_POLL_REQUEST_S = 30.0
_UNBOUNDED_WIDTH = 10_000
_COUNT_LIMIT = 1000  # purge's question counts dead letters up to this many


if TYPE_CHECKING:  # click >= 8.2 types ParamType by its value; older clicks cannot subscript it
    _FloatParamType = click.ParamType[float, Any]
else:
    _FloatParamType = click.ParamType


class Duration(_FloatParamType):
    """Seconds given as ``60``, ``60s``, ``1m30s`` or ``250ms`` (converted to a float)."""

    name = "duration"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a duration (60, 60s, 1m30s, 250ms)", param, ctx)


DURATION = Duration()


# ---------------------------------------------------------------- formatting


def _when(seconds: Any, timespec: str = "milliseconds") -> str | None:
    """Unix seconds as RFC 3339 UTC; None for 0 (not happened)."""
    if not isinstance(seconds, int | float) or seconds <= 0:
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec=timespec).replace("+00:00", "Z")


def _span(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:04.1f}s"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0][:300] if lines else ""


def time_value(raw: str, hint: str) -> str:
    """RFC 3339 as given, or a duration (``10m``) turned into now minus it."""
    try:
        seconds = parse_duration(raw)
    except ValueError:
        try:
            datetime.fromisoformat(raw)
        except ValueError:
            raise click.BadParameter(
                f"{raw!r} is neither a duration (10m, 1h) nor an RFC 3339 time", param_hint=hint
            ) from None
        return raw
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="seconds")


def _decode(entry: dict[str, Any], what: str) -> bytes:
    body = entry.get("body") or ""
    if not isinstance(body, str):
        raise GatewayError(f"the gateway's {what} has no text body", status=200)
    if entry.get("bodyEncoding") == "base64":
        try:
            return base64.b64decode(body, validate=True)
        except ValueError as exc:
            raise GatewayError(
                f"the gateway's {what} body is not valid base64", status=200
            ) from exc
    return body.encode()


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise GatewayError(f"the gateway's {what} is not a JSON object", status=200)
    return value


def _warn(text: str) -> None:
    click.echo(f"faasbus: warning: {text}", err=True)


# ---------------------------------------------------------------- calls


def _call_path(call_id: str, suffix: str = "") -> str:
    return f"/system/calls/{quote(call_id, safe='')}{suffix}"


def _get_record(
    client: GatewayClient, call_id: str, timeout_s: float | bool = True
) -> dict[str, Any]:
    response = client.request("GET", _call_path(call_id), timeout_s=timeout_s)
    response.check(200, what=f"read call {call_id}", not_found=f"call {call_id} not found")
    return _object(response.json(), "call record")


def _get_result(client: GatewayClient, call_id: str) -> dict[str, Any] | None:
    """The stored result, or None when the gateway has none (the record exists)."""
    response = client.request("GET", _call_path(call_id, "/result"))
    if response.status == 404:
        response.body()
        _get_record(client, call_id)  # raises "call X not found" when there is no record
        return None
    response.check(200, what=f"read the result of call {call_id}")
    return _object(response.json(), "call result")


def _callback_text(record: dict[str, Any]) -> str:
    state = str(record.get("callback_state") or "none")
    if state == "none":
        return "none"
    text = state
    status = int(record.get("callback_status") or 0)
    if status:
        text += f" ({status})"
    attempts = int(record.get("callback_attempts") or 0)
    if attempts:
        text += f" after {_plural(attempts, 'attempt')}"
    url = record.get("callback_url") or ""
    return f"{text} to {url}" if url else text


def _summary(record: dict[str, Any]) -> dict[str, object]:
    call_id = str(record.get("call_id", ""))
    attempts = int(record.get("attempts") or 0)
    most = int(record.get("max_attempts") or 0)
    queued = float(record.get("queued_at") or 0)
    started = float(record.get("started_at") or 0)
    source = str(record.get("source") or "")
    if record.get("topic"):
        source += f" (topic {record['topic']})"
    size = int(record.get("result_size") or 0)
    pairs: dict[str, object | None] = {
        "Call": call_id,
        "Function": f"{record.get('function', '')}.{record.get('namespace', '')}",
        "State": record.get("state", ""),
        "Source": source or None,
        "Attempts": f"{attempts} of {most}" if most else str(attempts),
        "Status": record.get("status_code") or None,
        "Queued": _when(queued),
        "Started": _when(started),
        "Waited": _span(started - queued) if started and queued and started >= queued else None,
        "Finished": _when(record.get("finished_at")),
        "Duration": _span(float(record["duration_s"])) if record.get("duration_s") else None,
        "Result": f"{size} bytes (faasbus calls result {call_id})" if size else None,
        "Callback": _callback_text(record),
        "Cancel requested": "yes"
        if record.get("cancel_requested") and record.get("state") != "cancelled"
        else None,
        "Error": record.get("error") or None,
    }
    return {key: value for key, value in pairs.items() if value is not None}


@click.group()
def calls() -> None:
    """Inspect and cancel asynchronous calls (by the X-Call-Id `invoke --async` prints)."""


@calls.command()
@click.argument("call_id", metavar="ID")
@json_option
@pass_app
def show(app: AppContext, call_id: str, as_json: bool) -> None:
    """Show a call's state, attempts, status, timings, callback outcome and error."""
    record = _get_record(app.client(), call_id)
    if as_json:
        print_json(record)
        return
    print_pairs(_summary(record))


@calls.command()
@click.argument("call_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the gateway's JSON (status, headers).")
@pass_app
def result(app: AppContext, call_id: str, as_json: bool) -> None:
    """Print the response body a finished call's function gave (whatever its status)."""
    client = app.client()
    stored = _get_result(client, call_id)
    if stored is None:
        state = str(_get_record(client, call_id).get("state", ""))
        yet = "" if state in _FINAL else " yet"
        raise NotFoundError(f"call {call_id} has no result{yet} (state {state})", status=404)
    if as_json:
        print_json(stored)
        return
    _write_result(stored, call_id)


def _write_result(stored: dict[str, Any], call_id: str) -> None:
    write_bytes(_decode(stored, "call result"))
    if stored.get("truncated"):
        _warn(
            f"the result of call {call_id} is truncated to the gateway's max_result_bytes "
            f"({stored.get('size', '?')} bytes in all)"
        )


@calls.command()
@click.argument("call_id", metavar="ID")
@pass_app
def cancel(app: AppContext, call_id: str) -> None:
    """Cancel a queued or running call (its callback, if any, says cancelled)."""
    response = app.client().request("DELETE", f"/async-function/{quote(call_id, safe='')}")
    if response.status == 409:
        detail = _first_line(response.body().decode("utf-8", errors="replace"))
        said = detail or f"call {call_id} already finished"
        raise GatewayError(f"{said}: nothing to cancel", status=409, detail=detail)
    response.check(202, 200, what=f"cancel call {call_id}", not_found=f"call {call_id} not found")
    response.body()
    click.echo(f"Cancelling call {call_id}")


# ---------------------------------------------------------------- invoke --async --wait


def _wait_final(client: GatewayClient, call_id: str, deadline: float) -> dict[str, Any]:
    delay = _FIRST_POLL_S
    while True:
        remaining = deadline - time.monotonic()
        record = _get_record(client, call_id, timeout_s=min(_POLL_REQUEST_S, max(remaining, 1.0)))
        state = str(record.get("state", ""))
        if state in _FINAL:
            return record
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise CliError(
                f"call {call_id} is still {state or 'unknown'} after the --timeout; it goes on: "
                f"`faasbus calls show {call_id}`"
            )
        time.sleep(min(delay, remaining))
        delay = min(delay * 2, _MAX_POLL_S)


def wait_and_print(client: GatewayClient, call_id: str, name: str, deadline: float) -> None:
    """Poll call ``call_id`` until final (before ``deadline``, monotonic), then print its body.

    Exits 0 (returns) when the function answered 2xx; otherwise raises a one-line error with the
    status (and the first line of the body or the record's error).
    """
    try:
        record = _wait_final(client, call_id, deadline)
    except KeyboardInterrupt:
        raise CliError(
            f"stopped waiting for call {call_id}; it goes on: `faasbus calls show {call_id}`"
        ) from None
    state = record.get("state")
    attempts = int(record.get("attempts") or 0)
    status = int(record.get("status_code") or 0)
    error = str(record.get("error") or "")
    if state == "cancelled":
        raise CliError(f"call {call_id} to {name!r} was cancelled")
    if state == "dead":
        last = f" (last status {status})" if status else ""
        raise GatewayError(
            f"call {call_id} to {name!r} is dead after {_plural(attempts, 'attempt')}{last}"
            + (f": {error}" if error else "")
            + f"; see `faasbus dlq list --function {record.get('function', name)}"
            + (f" -n {record['namespace']}`" if record.get("namespace") else "`"),
            status=status,
        )
    stored = _get_result(client, call_id)
    if stored is not None:
        status = int(stored.get("status") or status)
    if 200 <= status < 300:
        if stored is not None:
            _write_result(stored, call_id)
        elif int(record.get("result_size") or 0):
            _warn(f"call {call_id} succeeded but the gateway no longer has its result")
        return
    body = _decode(stored, "call result").decode("utf-8", errors="replace") if stored else ""
    detail = _first_line(body) or error
    if not status:
        raise GatewayError(
            f"call {call_id} to {name!r} failed after {_plural(attempts, 'attempt')}"
            + (f": {detail}" if detail else ""),
            status=0,
        )
    raise GatewayError(
        f"function {name!r} answered {status} (call {call_id})" + (f": {detail}" if detail else ""),
        status=status,
    )


# ---------------------------------------------------------------- dead letters


def _filter_query(function: str | None, namespace: str | None) -> dict[str, str]:
    query: dict[str, str] = {}
    if function:
        query["function"] = function
    if namespace:
        query["namespace"] = namespace
    return query


def _filter_options(func: Any) -> Any:
    func = click.option(
        "--namespace",
        "-n",
        metavar="NS",
        help="Only this namespace (with --function: the function's; default openfaas-fn).",
    )(func)
    return click.option("--function", "function", metavar="NAME", help="Only this function.")(func)


def _what(function: str | None, namespace: str | None) -> str:
    if function:
        return f"of function {function}" + (f" in namespace {namespace}" if namespace else "")
    if namespace:
        return f"in namespace {namespace}"
    return "in all namespaces"


def _list_dead(
    client: GatewayClient, query: dict[str, str], limit: int | None = None
) -> list[dict[str, Any]]:
    if limit is not None:
        query = {**query, "limit": str(limit)}
    response = client.request("GET", "/system/dlq", query=query or None)
    entries = response.check(200, what="list dead letters").json()
    if not isinstance(entries, list):
        raise GatewayError("the gateway's dead-letter list is not a JSON array", status=200)
    return [entry for entry in entries if isinstance(entry, dict)]


def _dead_rows(entries: Iterable[dict[str, Any]]) -> list[tuple[object, ...]]:
    return [
        (
            entry.get("seq", ""),
            entry.get("callId", ""),
            f"{entry.get('function', '')}.{entry.get('namespace', '')}",
            entry.get("kind", ""),
            entry.get("attempts", ""),
            entry.get("lastStatus") or "",
            _when(entry.get("deadAt"), "seconds") or "",
            entry.get("reason", ""),
        )
        for entry in entries
    ]


@click.group()
def dlq() -> None:
    """Dead letters: calls that exhausted their retries or whose callback was never accepted."""


@dlq.command(name="list")
@_filter_options
@click.option("--limit", type=click.IntRange(min=1), metavar="N", help="At most N entries.")
@json_option
@pass_app
def list_dead(
    app: AppContext, function: str | None, namespace: str | None, limit: int | None, as_json: bool
) -> None:
    """List dead letters, oldest first."""
    entries = _list_dead(app.client(), _filter_query(function, namespace), limit)
    if as_json:
        print_json(entries)
        return
    if not entries:
        click.echo(f"No dead letters {_what(function, namespace)}")
        return
    columns = ("SEQ", "CALL ID", "FUNCTION", "KIND", "ATTEMPTS", "STATUS", "DEAD AT", "REASON")
    _print_wide_table(columns, _dead_rows(entries))


def _print_wide_table(columns: Iterable[str], rows: Iterable[Iterable[object]]) -> None:
    """Like :func:`print_table`, but off a terminal lines are as long as the rows need.

    Call ids are 36-character UUIDs: folded to fit 80 columns in a pipe they could not be copied
    or grepped whole. On a terminal the table still fits the window.
    """
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    out = console()
    if not out.is_terminal:
        out.width = _UNBOUNDED_WIDTH
    out.print(table)


def _seq_argument(func: Any) -> Any:
    return click.argument("seq", type=click.IntRange(min=1), metavar="SEQ")(func)


@dlq.command(name="show")
@_seq_argument
@json_option
@pass_app
def show_dead(app: AppContext, seq: int, as_json: bool) -> None:
    """Show one dead letter: why it died, its headers and its body."""
    response = app.client().request("GET", f"/system/dlq/{seq}")
    response.check(200, what=f"read dead letter {seq}", not_found=f"dead letter {seq} not found")
    entry = _object(response.json(), "dead letter")
    if as_json:
        print_json(entry)
        return
    headers = entry.get("headers")
    header_text = (
        ", ".join(f"{k}: {v}" for k, v in sorted(headers.items()))
        if isinstance(headers, dict)
        else ""
    )
    pairs: dict[str, object | None] = {
        "Seq": entry.get("seq", seq),
        "Call": entry.get("callId", ""),
        "Function": f"{entry.get('function', '')}.{entry.get('namespace', '')}",
        "Kind": entry.get("kind", ""),
        "Reason": entry.get("reason", ""),
        "Last status": entry.get("lastStatus") or None,
        "Attempts": entry.get("attempts", 0),
        "Dead at": _when(entry.get("deadAt")),
        "Source": entry.get("source") or None,
        "Callback": entry.get("callbackUrl") or None,
        "Headers": header_text or None,
        "Size": f"{entry.get('size', 0)} bytes",
    }
    print_pairs({key: value for key, value in pairs.items() if value is not None})
    if entry.get("bodyEncoding") == "base64":
        click.echo("Body is binary: `faasbus dlq show --json` has it in base64")
        return
    body = entry.get("body") or ""
    if body:
        click.echo("")
        click.echo(body, nl=not str(body).endswith("\n"))


@dlq.command()
@click.argument("seq", type=click.IntRange(min=1), metavar="[SEQ]", required=False)
@_filter_options
@click.option("--since", metavar="WHEN", help="Died at or after: duration (10m) or RFC 3339.")
@click.option("--until", metavar="WHEN", help="Died at or before: duration (10m) or RFC 3339.")
@json_option
@pass_app
def redrive(
    app: AppContext,
    *,
    seq: int | None,
    function: str | None,
    namespace: str | None,
    since: str | None,
    until: str | None,
    as_json: bool,
) -> None:
    """Put dead letters back on the queue under their own call ids.

    One (SEQ), all of a function (--function, --namespace), or those that died in a time window
    (--since, --until; combinable with --function).
    """
    selector: dict[str, Any] = {}
    filtered = bool(function or namespace or since or until)
    if seq is not None:
        if filtered:
            raise click.UsageError("give either SEQ or --function/--namespace/--since/--until")
        selector["seq"] = seq
    elif not filtered:
        raise click.UsageError("say what to redrive: SEQ, --function NAME or --since WHEN")
    selector.update(_filter_query(function, namespace))
    if since:
        selector["since"] = time_value(since, "--since")
    if until:
        selector["until"] = time_value(until, "--until")
    response = app.client().request("POST", "/system/dlq/redrive", json_body=selector)
    missing = f"dead letter {seq} not found" if seq is not None else ""
    response.check(202, 200, what="redrive dead letters", not_found=missing)
    outcome = _object(response.json(), "redrive answer")
    if as_json:
        print_json(outcome)
        return
    call_ids = [str(call_id) for call_id in outcome.get("callIds") or []]
    count = int(outcome.get("redriven") or len(call_ids))
    if not count:
        click.echo("Nothing to redrive: no dead letter matches")
        return
    click.echo(f"Redriven {_plural(count, 'dead letter')}; call ids:")
    for call_id in call_ids:
        click.echo(call_id)


@dlq.command()
@_filter_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@pass_app
def purge(app: AppContext, function: str | None, namespace: str | None, yes: bool) -> None:
    """Delete dead letters for good (all, a namespace's, or a function's)."""
    client = app.client()
    query = _filter_query(function, namespace)
    what = _what(function, namespace)
    if not yes:
        count = len(_list_dead(client, query, _COUNT_LIMIT + 1))
        if not count:
            click.echo(f"No dead letters {what}")
            return
        many = f"more than {_COUNT_LIMIT} dead letters" if count > _COUNT_LIMIT else ""
        try:
            confirmed = click.confirm(
                f"Delete {many or _plural(count, 'dead letter')} {what} for good?", default=False
            )
        except click.Abort:
            confirmed = False
        if not confirmed:
            raise CliError("nothing purged (not confirmed; --yes skips the question)")
    response = client.request("DELETE", "/system/dlq", query=query or None)
    response.check(202, 200, 204, what="purge dead letters")
    response.body()
    click.echo(f"Purged dead letters {what}")


@dlq.command(name="remove")
@_seq_argument
@pass_app
def remove_dead(app: AppContext, seq: int) -> None:
    """Delete one dead letter."""
    response = app.client().request("DELETE", f"/system/dlq/{seq}")
    response.check(
        202, 200, 204, what=f"remove dead letter {seq}", not_found=f"dead letter {seq} not found"
    )
    response.body()
    click.echo(f"Removed dead letter {seq}")


GROUPS = [calls, dlq]
