"""``faasbus secret create|update|list|remove`` against ``/system/secrets``.

Values come from ``--from-literal``, ``--from-file`` or stdin (in that order of preference) and are
sent as faas-cli sends them: literal text as ``value``, file and stdin bytes as ``rawValue``
(base64), so binary secrets survive. The API never returns values, and neither does this command.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import click

from faasbus.cli.context import AppContext, json_option, namespace_option, pass_app
from faasbus.cli.errors import CliError, GatewayError
from faasbus.cli.output import print_json, print_table, read_stdin, stdin_is_terminal

__all__ = ["secret"]


def _body(
    name: str,
    namespace: str | None,
    literal: str | None,
    from_file: Path | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if namespace:
        body["namespace"] = namespace
    if literal is not None and from_file is not None:
        raise click.UsageError("give either --from-literal or --from-file, not both")
    if literal is not None:
        body["value"] = literal
        return body
    if from_file is not None:
        try:
            data = from_file.read_bytes()
        except OSError as exc:
            raise CliError(f"cannot read {from_file}: {exc.strerror}") from exc
    else:
        if stdin_is_terminal():
            click.echo("Reading the secret value from stdin (Ctrl-D to end)...", err=True)
        data = read_stdin()
    if not data:
        raise click.UsageError(
            "the secret value is empty (use --from-literal, --from-file or stdin)"
        )
    body["rawValue"] = base64.b64encode(data).decode("ascii")
    return body


def _value_options(func: Any) -> Any:
    func = click.option(
        "--from-file",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Read the value from this file.",
    )(func)
    return click.option("--from-literal", metavar="VALUE", help="The value itself.")(func)


@click.group()
def secret() -> None:
    """Manage secrets functions can read (values are never shown)."""


@secret.command()
@click.argument("name")
@_value_options
@namespace_option
@pass_app
def create(
    app: AppContext,
    name: str,
    from_literal: str | None,
    from_file: Path | None,
    namespace: str | None,
) -> None:
    """Create secret NAME (fails if it exists)."""
    body = _body(name, namespace, from_literal, from_file)
    response = app.client().request("POST", "/system/secrets", json_body=body)
    if response.status == 409:
        response.body()
        raise GatewayError(
            f"secret {name!r} already exists: use `faasbus secret update {name}`", status=409
        )
    response.check(200, 201, 202, what=f"create secret {name!r}")
    response.body()
    click.echo(f"Created secret {name}")


@secret.command()
@click.argument("name")
@_value_options
@namespace_option
@pass_app
def update(
    app: AppContext,
    name: str,
    from_literal: str | None,
    from_file: Path | None,
    namespace: str | None,
) -> None:
    """Replace the value of secret NAME (functions using it see the new value)."""
    body = _body(name, namespace, from_literal, from_file)
    response = app.client().request("PUT", "/system/secrets", json_body=body)
    response.check(200, 202, what=f"update secret {name!r}", not_found=f"secret {name!r} not found")
    response.body()
    click.echo(f"Updated secret {name}")


@secret.command(name="list")
@namespace_option
@json_option
@pass_app
def list_secrets(app: AppContext, namespace: str | None, as_json: bool) -> None:
    """List secret names."""
    query = {"namespace": namespace} if namespace else None
    response = app.client().request("GET", "/system/secrets", query=query)
    secrets = response.check(200, what="list secrets").json()
    if not isinstance(secrets, list):
        raise GatewayError("the gateway's secret list is not a JSON array", status=200)
    if as_json:
        print_json(secrets)
        return
    rows = [
        (item.get("name", ""), item.get("namespace", ""))
        for item in secrets
        if isinstance(item, dict)
    ]
    print_table(("NAME", "NAMESPACE"), rows)


@secret.command()
@click.argument("name")
@namespace_option
@pass_app
def remove(app: AppContext, name: str, namespace: str | None) -> None:
    """Delete secret NAME."""
    body: dict[str, Any] = {"name": name}
    if namespace:
        body["namespace"] = namespace
    response = app.client().request("DELETE", "/system/secrets", json_body=body)
    response.check(200, 202, what=f"remove secret {name!r}", not_found=f"secret {name!r} not found")
    response.body()
    click.echo(f"Removed secret {name}")
