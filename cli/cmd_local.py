"""Local commands: ``new`` (scaffold), ``build`` (bundles) and ``up`` (the whole stack).

None of them needs a running gateway; ``build`` and ``up`` use the state directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from faasbus.bus import configure_logging
from faasbus.cli.build import BuildResult, build_functions
from faasbus.cli.context import AppContext, pass_app
from faasbus.cli.launcher import UpSettings, default_stack_file, run_up
from faasbus.cli.scaffold import scaffold_function
from faasbus.cli.stack import TEMPLATE_LANGS, load_stack
from faasbus.cli.stack_options import filter_option, select_functions, stack_file_option

__all__ = ["COMMANDS"]


@click.command()
@click.argument("name")
@click.option(
    "--lang",
    type=click.Choice(sorted(TEMPLATE_LANGS)),
    required=True,
    help="Template to start from.",
)
@stack_file_option("Stack file to add the function to.")
def new(name: str, lang: str, stack_file: Path) -> None:
    """Scaffold function NAME from a template and add it to the stack file."""
    result = scaffold_function(name, lang, stack_file)
    click.echo(f"Created {result.handler_dir} from template {lang}:")
    for path in result.files:
        click.echo(f"  {path.relative_to(result.handler_dir.parent)}")
    action = "Rewrote" if result.stack_rewritten else "Added the function to"
    click.echo(
        f"{action} {result.stack_path}"
        + (" (comments were not kept)" if result.stack_rewritten else "")
    )
    click.echo(f"Next: faasbus deploy -f {stack_file} --filter {name}")


@click.command()
@stack_file_option()
@filter_option
@pass_app
def build(app: AppContext, stack_file: Path, name_filter: str | None) -> None:
    """Build the template functions of a stack file into bundles in the state directory."""
    selected = select_functions(load_stack(stack_file), name_filter)

    def report(result: BuildResult) -> None:
        if result.bundle is not None:
            click.echo(f"Built {result.name}: {result.bundle}")
        else:
            click.echo(f"Skipped {result.name}: {result.skipped}")

    build_functions(selected, app.settings().state_dir, on_result=report)


@click.command()
@stack_file_option(
    "Stack file to deploy once up [default: examples/stack.yml if found].", default=None
)
@click.option("--no-deploy", is_flag=True, help="Deploy nothing after start.")
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Gateway port on 127.0.0.1 (0: a free one).",
)
@click.option("--nats-url", metavar="URL", help="Use this NATS instead of starting nats-server.")
@click.option(
    "--nats-port",
    type=click.IntRange(1, 65535),
    envvar="FAASBUS_NATS_PORT",
    help="Embedded nats-server port [default: 4222, or a free one if taken].",
)
@click.option(
    "--kafka-brokers",
    metavar="HOSTS",
    help="Run the Kafka connector against these brokers (sets broker_hosts).",
)
@click.option(
    "--sqs-queue-url",
    metavar="URLS",
    help="Run the SQS connector for these queue URLs, comma-separated (sets queue_url).",
)
@click.option(
    "--sqs-endpoint-url",
    metavar="URL",
    help="An SQS-compatible endpoint for the SQS connector (sets AWS_ENDPOINT_URL_SQS).",
)
@click.option(
    "--stop-timeout",
    default=30.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds between SIGTERM and SIGKILL for each process.",
)
@pass_app
def up(
    app: AppContext,
    *,
    stack_file: Path | None,
    no_deploy: bool,
    port: int,
    nats_url: str | None,
    nats_port: int | None,
    kafka_brokers: str | None,
    sqs_queue_url: str | None,
    sqs_endpoint_url: str | None,
    stop_timeout: float,
) -> None:
    """Run nats-server, provider and gateway (and later workers, connectors) until Ctrl-C."""
    if stack_file is not None:
        load_stack(stack_file)  # a bad file fails now, not after the stack is up
        stack_file = stack_file.resolve()
    elif not no_deploy:
        stack_file = default_stack_file()
    settings = UpSettings(
        state_dir=app.settings().state_dir.resolve(),
        port=port,
        nats_url=nats_url,
        nats_port=nats_port,
        stack_file=None if no_deploy else stack_file,
        stop_timeout_s=stop_timeout,
    )
    # The connectors read OpenFaaS's names from their environment, which they inherit from ours.
    for variable, value in (
        ("broker_hosts", kafka_brokers),
        ("queue_url", sqs_queue_url),
        ("AWS_ENDPOINT_URL_SQS", sqs_endpoint_url),
    ):
        if value:
            os.environ[variable] = value
    configure_logging("up")
    run_up(settings)


COMMANDS = [new, build, up]
