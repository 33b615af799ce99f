"""Entry point of the ``faasbus`` console script and of ``python -m faasbus.cli``.

Maps every failure to one line on stderr and a non-zero exit: :class:`CliError` (through the
group), click usage errors (click's own two lines: usage and the problem), Ctrl-C (130), a closed
stdout pipe (``faasbus logs NAME | head``), and, as a last resort, an unexpected exception (its
type and message; ``FAASBUS_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import os
import sys

import click

from faasbus.cli.app import cli
from faasbus.cli.errors import CliError

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    try:
        code = cli.main(args=argv, prog_name="faasbus", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("faasbus: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CliError as exc:
        click.echo(f"faasbus: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (| head): silence the flush at exit too.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except Exception as exc:
        if os.environ.get("FAASBUS_DEBUG"):
            raise
        click.echo(
            f"faasbus: unexpected error: {type(exc).__name__}: {exc} "
            "(FAASBUS_DEBUG=1 shows the traceback)",
            err=True,
        )
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
