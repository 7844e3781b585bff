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
from toolkit.cli import hosts as hosts_cmd
from toolkit.cli import keys as keys_cmd
from toolkit.cli import models as models_cmd
from toolkit.cli import place as place_cmd
from toolkit.cli import profiles as profiles_cmd
from toolkit.cli import report as report_cmd
from toolkit.cli import runs as runs_cmd
from toolkit.cli import sandbox as sandbox_cmd
from toolkit.cli import usage as usage_cmd
from toolkit.cli import validate as validate_cmd
from toolkit.errors import EXIT_CODE_HELP, ExitCode, GpuforgeError

app = typer.Typer(
    name="gpuforge",
    help="Provision Linux GPU hosts that serve open-weight models, with Ansible.\n\n"
         + EXIT_CODE_HELP,
    no_args_is_help=True,
    add_completion=True,
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
app.command("place")(place_cmd.place)
app.command("validate")(validate_cmd.validate)
app.command("report")(report_cmd.report)
app.command("usage")(usage_cmd.usage)
app.add_typer(runs_cmd.app, name="runs")
app.add_typer(sandbox_cmd.app, name="sandbox")
app.add_typer(hosts_cmd.app, name="hosts")
app.add_typer(keys_cmd.app, name="keys")


def _wants_json(args: list[str]) -> bool:
    """`--json` among the options (not after `--`): errors then also go to stdout as JSON."""
    if "--" in args:
        args = args[:args.index("--")]
    return "--json" in args


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every error becomes one `Error:`/`Hint:` pair and a documented exit code.

    This is the one place errors are turned into exit codes. With `--json`, each error
    is also printed on stdout as `{"error": ..., "hint": ... | null, "exit_code": N}`
    (unless the command already printed its document), so stdout always holds exactly
    one JSON document.
    """
    # Typer vendors its own click; its exception classes are the ones raised.
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    from toolkit.console import error, error_json, reset_json_emitted

    args = list(sys.argv[1:] if argv is None else argv)
    as_json = _wants_json(args)
    reset_json_emitted()

    def fail(message: str, hint: str, code: ExitCode | int) -> int:
        error(message, hint)
        if as_json:
            error_json(message, hint, int(code))
        return int(code)

    def traceback_if_debug() -> None:
        if _debug["on"]:
            import traceback

            traceback.print_exc()

    try:
        result = app(args=args, standalone_mode=False, prog_name="gpuforge")
        return int(result) if isinstance(result, int) else 0
    except GpuforgeError as exc:
        traceback_if_debug()
        return fail(exc.message, exc.hint, exc.code)
    except typer.Exit as exc:
        code = int(exc.exit_code)
        if code != 0 and as_json:
            # A command that exits non-zero without its own document still owes one.
            error_json(f"gpuforge exited with code {code}", "see the lines above on stderr",
                       code)
        return code
    except (typer.Abort, KeyboardInterrupt):
        return fail("cancelled", "", ExitCode.CANCELLED)
    except NoArgsIsHelpError as exc:
        # A bare `gpuforge` (or `gpuforge runs`) asks for the help, which is not an error.
        # Typer's rich help is already printed on stdout; plain help comes as the message.
        message = exc.format_message()
        if message.strip():
            print(message)
        return int(ExitCode.OK)
    except UsageError as exc:
        path = exc.ctx.command_path if exc.ctx is not None else "gpuforge"
        return fail(exc.format_message(), f"see `{path} --help`", ExitCode.INVALID_INPUT)
    except ClickException as exc:
        return fail(exc.format_message(), "", ExitCode.INVALID_INPUT)
    except Exception as exc:
        traceback_if_debug()
        return fail(f"internal error: {type(exc).__name__}: {exc}",
                    "run again with --debug for the traceback, and report it",
                    ExitCode.INTERNAL)


def run() -> None:
    sys.exit(main())


if __name__ == "__main__":
    run()
