"""The `gpuforge` command: a thin root that maps known errors to exit codes.

Subcommand modules import only typer at load time; ansible, ansible_runner and the
rest are imported inside the commands so that `--help` stays instant.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from toolkit import __version__
from toolkit.cli import apply as apply_cmd
from toolkit.cli import check as check_cmd
from toolkit.cli import demo as demo_cmd
from toolkit.cli import endpoints as endpoints_cmd
from toolkit.cli import facts as facts_cmd
from toolkit.cli import models as models_cmd
from toolkit.cli import profiles as profiles_cmd
from toolkit.cli import report as report_cmd
from toolkit.cli import runs as runs_cmd
from toolkit.cli import sandbox as sandbox_cmd
from toolkit.cli import validate as validate_cmd
from toolkit.errors import EXIT_CODE_HELP, ExitCode, GpuforgeError

app = typer.Typer(
    name="gpuforge",
    help="Provision Linux GPU hosts that serve open-weight models, with Ansible.\n\n"
         + EXIT_CODE_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

_debug = {"on": False}


def _version(value: bool) -> None:
    if value:
        print(f"gpuforge {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    version: Annotated[bool | None, typer.Option(
        "--version", callback=_version, is_eager=True, help="Show the version.")] = None,
) -> None:
    _debug["on"] = debug or bool(os.environ.get("GPUFORGE_DEBUG"))


app.command("apply")(apply_cmd.apply)
app.command("plan")(apply_cmd.plan)
app.command("check")(check_cmd.check)
app.command("facts")(facts_cmd.facts)
app.command("profiles")(profiles_cmd.profiles)
app.command("demo")(demo_cmd.demo)
app.command("endpoints")(endpoints_cmd.endpoints)
app.add_typer(models_cmd.app, name="models")
app.command("validate")(validate_cmd.validate)
app.command("report")(report_cmd.report)
app.add_typer(runs_cmd.app, name="runs")
app.add_typer(sandbox_cmd.app, name="sandbox")


def main(argv: list[str] | None = None) -> int:
    # Typer vendors its own click; its exception classes are the ones raised.
    from typer._click.exceptions import ClickException, UsageError

    from toolkit.console import error

    try:
        result = app(args=argv, standalone_mode=False, prog_name="gpuforge")
        return int(result) if isinstance(result, int) else 0
    except GpuforgeError as exc:
        if _debug["on"]:
            import traceback

            traceback.print_exc()
        error(exc.message, exc.hint)
        return int(exc.code)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except typer.Abort:
        error("cancelled")
        return int(ExitCode.CANCELLED)
    except KeyboardInterrupt:
        error("cancelled")
        return int(ExitCode.CANCELLED)
    except UsageError as exc:
        error(exc.format_message(), f"see `gpuforge {' '.join(sys.argv[1:2])} --help`")
        return int(ExitCode.INVALID_INPUT)
    except ClickException as exc:
        error(exc.format_message())
        return int(ExitCode.INVALID_INPUT)
    except Exception as exc:
        if _debug["on"]:
            import traceback

            traceback.print_exc()
        error(f"internal error: {type(exc).__name__}: {exc}",
              "run again with --debug for the traceback, and report it")
        return int(ExitCode.INTERNAL)


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
