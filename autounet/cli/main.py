"""The ``autounet`` app: global options, error handling, and the registry of commands."""

from __future__ import annotations

import os
import sys
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from autounet import __version__
from autounet.errors import UserError

DEBUG_ENV = "AUTOUNET_DEBUG"


def _untyped_flags(params: list) -> list:
    """Give on/off flags an empty type column in --help (typer 0.29 prints ``<bool>``, which reads as if the
    flag took a value)."""
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class _FriendlyGroup(TyperGroup):
    """Shows user errors as one sentence and a non-zero exit, without a traceback (unless --debug)."""

    def get_params(self, ctx: typer.Context) -> list:
        return _untyped_flags(super().get_params(ctx))

    def get_command(self, ctx: typer.Context, name: str):
        command = super().get_command(ctx, name)
        if command is not None:
            _untyped_flags(command.get_params(ctx))
        return command

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except UserError as error:
            self._fail(error)
        except OSError as error:
            # A full disk or an unwritable place hit outside autounet's own writers (a mkdir, a library's file).
            friendly = _storage_error(error)
            if friendly is None:
                raise
            self._fail(friendly, error)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise typer.Exit(130) from None

    @staticmethod
    def _fail(error: UserError, cause: BaseException | None = None):
        if os.environ.get(DEBUG_ENV):
            raise cause or error
        from autounet.cli.common import err

        err.print(f"[bold red]error:[/bold red] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(error.exit_code) from None


def _storage_error(error: OSError) -> UserError | None:
    """One sentence for an ``OSError`` that means a full disk or a place that cannot be written, else None."""
    from pathlib import Path

    from autounet.utils.atomic import storage_error

    if not error.filename:
        return storage_error(error.errno, Path("the output folder"))
    path = Path(str(error.filename))
    return storage_error(error.errno, path.parent, path.name)


app = typer.Typer(
    cls=_FriendlyGroup,
    help="autounet: labelled biomedical images in, a cross-validated U-Net ensemble out.\n\n"
         "Example: autounet run examples/Dataset004_Hippocampus --budget quick",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"autounet {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="Print the version and exit.")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Show only results, warnings and errors (the log "
                                        "files still get everything).")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Also show the detail written to the log files "
                                          "(versions, machine, resolved settings).")] = False,
) -> None:
    from autounet.utils.logs import set_verbosity

    if debug:
        os.environ[DEBUG_ENV] = "1"
    set_verbosity(quiet=quiet, verbose=verbose)


# The commands of each stage, in the order data flows.
from autounet.cli import (commands_dataset, commands_evaluate, commands_plan,  # noqa: E402
                          commands_predict, commands_preprocess, commands_report, commands_run, commands_train)

for _stage in (commands_dataset, commands_plan, commands_preprocess, commands_train, commands_predict,
               commands_evaluate, commands_report, commands_run):
    _stage.register(app)


def main() -> None:
    """Entry point of the ``autounet`` console script."""
    app()
