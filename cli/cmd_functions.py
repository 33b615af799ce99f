"""Function commands against the gateway API: deploy, remove, list, describe, invoke, logs, scale.

Each command is a thin wrapper of one or two requests of REFERENCE.md section 1, sent the way
faas-cli sends them (section 10) so both tools see the same platform. Output: a short human line
or table, or JSON with ``--json``; failures raise a :class:`CliError` with one line.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click

from faasbus.cli.build import BuildResult
from faasbus.cli.client import GatewayClient
from faasbus.cli.cmd_calls import DURATION, time_value, wait_and_print
from faasbus.cli.context import AppContext, json_option, namespace_option, pass_app
from faasbus.cli.deploy import DeployResult, build_and_deploy
from faasbus.cli.errors import GatewayError, NotFoundError
from faasbus.cli.output import (
    print_json,
    print_pairs,
    print_table,
    read_stdin,
    stdin_is_terminal,
    write_bytes,
)
from faasbus.cli.stack import load_stack
from faasbus.cli.stack_options import filter_option, select_functions, stack_file_option

__all__ = ["COMMANDS"]


def _not_found(name: str, namespace: str | None) -> str:
    where = f" in namespace {namespace}" if namespace else ""
    return f"function {name!r} not found{where}"


def _function_path(prefix: str, name: str, namespace: str | None, path: str) -> str:
    target = f"{name}.{namespace}" if namespace else name
    suffix = path if path.startswith("/") or not path else "/" + path
    return f"/{prefix}/{target}{suffix}"


@click.command()
@stack_file_option()
@filter_option
@pass_app
def deploy(app: AppContext, stack_file: Path, name_filter: str | None) -> None:
    """Build what needs building, then deploy (PUT, or POST when new) each function."""
    stack = load_stack(stack_file)
    settings = app.settings().with_stack_gateway(stack.gateway)
    selected = select_functions(stack, name_filter)

    def built(result: BuildResult) -> None:
        if result.bundle is not None:
            click.echo(f"Built {result.name}: {result.bundle}")

    def deployed(result: DeployResult) -> None:
        verb = "Deployed" if result.created else "Updated"
        click.echo(
            f"{verb} {result.name} ({result.status}): {settings.gateway}/function/{result.name}"
        )

    build_and_deploy(
        app.client(settings), selected, settings.state_dir, on_build=built, on_deploy=deployed
    )


@click.command()
@click.argument("names", nargs=-1)
@stack_file_option("Remove the functions of this stack file.", default=None)
@click.option("--filter", "name_filter", metavar="GLOB", help="With -f: only matching functions.")
@namespace_option
@pass_app
def remove(
    app: AppContext,
    names: tuple[str, ...],
    stack_file: Path | None,
    name_filter: str | None,
    namespace: str | None,
) -> None:
    """Remove functions by NAME, or those of a stack file."""
    targets: list[tuple[str, str | None]] = [(name, namespace) for name in names]
    settings = app.settings()
    if stack_file is not None:
        stack = load_stack(stack_file)
        settings = settings.with_stack_gateway(stack.gateway)
        targets += [(fn.name, fn.namespace or namespace) for fn in stack.select(name_filter)]
    if not targets:
        raise click.UsageError("give a function NAME or -f stack.yml")
    client = app.client(settings)
    for name, ns in targets:
        body: dict[str, str] = {"functionName": name}
        if ns:
            body["namespace"] = ns
        response = client.request("DELETE", "/system/functions", json_body=body)
        response.check(200, 202, what=f"remove {name!r}", not_found=_not_found(name, ns))
        response.body()
        click.echo(f"Removed {name}")


@click.command(name="list")
@namespace_option
@json_option
@pass_app
def list_functions(app: AppContext, namespace: str | None, as_json: bool) -> None:
    """List deployed functions with invocations and replicas."""
    query = {"namespace": namespace} if namespace else None
    response = app.client().request("GET", "/system/functions", query=query)
    functions = response.check(200, what="list functions").json()
    if not isinstance(functions, list):
        raise GatewayError("the gateway's function list is not a JSON array", status=200)
    if as_json:
        print_json(functions)
        return
    rows = [
        (
            fn.get("name", ""),
            int(fn.get("invocationCount") or 0),
            f"{fn.get('availableReplicas', 0)}/{fn.get('replicas', 0)}",
            fn.get("image") or fn.get("envProcess") or "",
        )
        for fn in functions
        if isinstance(fn, dict)
    ]
    print_table(("NAME", "INVOCATIONS", "READY", "IMAGE / PROCESS"), rows)


def _usage(status: dict[str, Any]) -> str:
    usage = status.get("usage")
    if not isinstance(usage, dict):
        return ""
    memory_mib = float(usage.get("totalMemoryBytes") or 0) / (1024 * 1024)
    return f"cpu {float(usage.get('cpu') or 0):.1f}%, memory {memory_mib:.1f} MiB"


def _mapping_text(value: Any) -> str:
    if not isinstance(value, dict) or not value:
        return ""
    return ", ".join(f"{k}={v}" for k, v in sorted(value.items()))


@click.command()
@click.argument("name")
@namespace_option
@json_option
@pass_app
def describe(app: AppContext, name: str, namespace: str | None, as_json: bool) -> None:
    """Show one function's status, replicas, usage and configuration."""
    query = {"usage": "1"}
    if namespace:
        query["namespace"] = namespace
    response = app.client().request("GET", f"/system/function/{name}", query=query)
    status = response.check(
        200, what=f"describe {name!r}", not_found=_not_found(name, namespace)
    ).json()
    if not isinstance(status, dict):
        raise GatewayError("the gateway's function status is not a JSON object", status=200)
    if as_json:
        print_json(status)
        return
    gateway = app.settings().gateway
    available = int(status.get("availableReplicas") or 0)
    print_pairs(
        {
            "Name": status.get("name", name),
            "Namespace": status.get("namespace", ""),
            "Status": "Ready" if available > 0 else "Not ready",
            "Replicas": status.get("replicas", 0),
            "Available replicas": available,
            "Invocations": int(status.get("invocationCount") or 0),
            "Image": status.get("image", ""),
            "Function process": status.get("envProcess", ""),
            "URL": f"{gateway}{_function_path('function', name, namespace, '')}",
            "Async URL": f"{gateway}{_function_path('async-function', name, namespace, '')}",
            "Labels": _mapping_text(status.get("labels")),
            "Annotations": _mapping_text(status.get("annotations")),
            "Secrets": ", ".join(status.get("secrets") or []),
            "Created": status.get("createdAt", ""),
            "Usage": _usage(status),
        }
    )


def _parse_header(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition(":")
    if not sep:
        name, sep, value = raw.partition("=")
    if not sep or not name.strip():
        raise click.BadParameter(f"{raw!r} is not 'Name: value'", param_hint="-H/--header")
    return name.strip(), value.strip()


@click.command()
@click.argument("name")
@click.option("--async", "is_async", is_flag=True, help="Queue the call; prints its X-Call-Id.")
@click.option("--wait", is_flag=True, help="With --async: wait for the call, print its result.")
@click.option("--callback-url", metavar="URL", help="With --async: POST the result here.")
@click.option("-H", "--header", "headers", multiple=True, metavar="'K: V'", help="Extra header.")
@click.option("--method", "-m", default="POST", show_default=True, help="HTTP method.")
@click.option("--path", default="", metavar="PATH", help="Path after the function name.")
@click.option("--query", "-q", "queries", multiple=True, metavar="K=V", help="Query parameter.")
@click.option(
    "--timeout",
    type=DURATION,
    default="60s",
    show_default=True,
    help="How long to wait for the response (sync) or the call to finish (--wait).",
)
@namespace_option
@pass_app
def invoke(
    app: AppContext,
    *,
    name: str,
    is_async: bool,
    wait: bool,
    callback_url: str | None,
    headers: tuple[str, ...],
    method: str,
    path: str,
    queries: tuple[str, ...],
    timeout: float,
    namespace: str | None,
) -> None:
    """Call a function with the body read from stdin and print its response body."""
    if callback_url and not is_async:
        raise click.UsageError("--callback-url needs --async")
    if wait and not is_async:
        raise click.UsageError("--wait needs --async")
    deadline = time.monotonic() + timeout
    send_headers = dict(_parse_header(raw) for raw in headers)
    if callback_url:
        send_headers["X-Callback-Url"] = callback_url
    query: dict[str, str] = {}
    for raw in queries:
        key, sep, value = raw.partition("=")
        if not sep:
            raise click.BadParameter(f"{raw!r} is not K=V", param_hint="-q/--query")
        query[key] = value
    body = b"" if stdin_is_terminal() else read_stdin()
    prefix = "async-function" if is_async else "function"
    request_method = "POST" if is_async else method.upper()
    client: GatewayClient = app.client(timeout_s=timeout)
    # Function routes are open, and the gateway forwards headers to the function: never send
    # the platform's credentials there (faas-cli does not either).
    response = client.request(
        request_method,
        _function_path(prefix, name, namespace, path),
        query=query or None,
        body=body,
        headers=send_headers,
        auth=False,
    )
    if response.status == 404:
        detail = response.body().decode("utf-8", errors="replace").strip().splitlines()
        said = f" (the gateway said: {detail[0][:200]})" if detail else ""
        raise NotFoundError(_not_found(name, namespace) + said, status=404)
    if is_async:
        response.check(202, what=f"queue a call to {name!r}")
        response.body()
        call_id = response.headers.get("X-Call-Id", "")
        if not wait:
            click.echo(call_id)
            return
        if not call_id:
            raise GatewayError("the gateway queued the call but sent no X-Call-Id", status=202)
        wait_and_print(app.client(), call_id, name, deadline)
        return
    if response.status >= 400:
        detail = response.body().decode("utf-8", errors="replace").strip().splitlines()
        internal = response.headers.get("X-OpenFaaS-Internal")
        source = f" (from {internal})" if internal else ""
        raise GatewayError(
            f"function {name!r} answered {response.status}{source}"
            + (f": {detail[0][:300]}" if detail else ""),
            status=response.status,
        )
    for chunk in response.chunks():
        write_bytes(chunk)


def _log_line(raw: bytes) -> str | None:
    text = raw.decode("utf-8", errors="replace").strip()
    if not text:
        return None
    try:
        entry = json.loads(text)
    except ValueError:
        return text
    if not isinstance(entry, dict):
        return text
    return (
        f"{entry.get('timestamp', '')} {entry.get('name', '')} "
        f"({entry.get('instance', '')}) {entry.get('text', '')}"
    )


@click.command()
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep streaming new lines.")
@click.option("--since", metavar="WHEN", help="Duration (10m) or RFC 3339 time.")
@click.option("--tail", type=int, metavar="N", help="Only the last N lines (-1: all).")
@click.option("--instance", metavar="ID", help="Only this replica.")
@namespace_option
@json_option
@pass_app
def logs(
    app: AppContext,
    *,
    name: str,
    follow: bool,
    since: str | None,
    tail: int | None,
    instance: str | None,
    namespace: str | None,
    as_json: bool,
) -> None:
    """Print a function's log lines (NDJSON from /system/logs)."""
    query: dict[str, str] = {"name": name, "follow": "true" if follow else "false"}
    if namespace:
        query["namespace"] = namespace
    if instance:
        query["instance"] = instance
    if tail is not None:
        query["tail"] = str(tail)
    if since:
        query["since"] = time_value(since, "--since")
    client = app.client(timeout_s=None if follow else 60.0)
    response = client.request("GET", "/system/logs", query=query)
    response.check(200, what=f"read logs of {name!r}", not_found=_not_found(name, namespace))
    for raw in response.lines():
        if as_json:
            stripped = raw.strip()
            if stripped:
                write_bytes(stripped + b"\n")
            continue
        line = _log_line(raw)
        if line is not None:
            click.echo(line)


@click.command()
@click.argument("name")
@click.option("--replicas", "-r", type=click.IntRange(min=0), required=True, help="Target count.")
@namespace_option
@pass_app
def scale(app: AppContext, name: str, replicas: int, namespace: str | None) -> None:
    """Set a function's replica count (0 stops it; a request scales it back up)."""
    body: dict[str, Any] = {"serviceName": name, "replicas": replicas}
    if namespace:
        body["namespace"] = namespace
    response = app.client().request("POST", f"/system/scale-function/{name}", json_body=body)
    response.check(200, 202, what=f"scale {name!r}", not_found=_not_found(name, namespace))
    # The provider may clamp the count to the function's scale labels and says so in the body.
    said = response.body().decode("utf-8", errors="replace").strip().splitlines()
    plural = "s" if replicas != 1 else ""
    click.echo(
        f"Scaled {name}: {said[0]}" if said else f"Scaled {name} to {replicas} replica{plural}"
    )


COMMANDS = [deploy, remove, list_functions, describe, invoke, logs, scale]
