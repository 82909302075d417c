"""The `w2v2` Typer application and its single error handler.

Every module in `w2v2cli/cli/` (except this one) defines `register(app: typer.Typer)` and adds its
command(s); they are picked up here in alphabetical order, so adding a command never touches this file.
Errors of the `W2V2Error` family are printed once, with their hint, and exit non-zero; a traceback
is printed only with `w2v2 --debug ...`.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys

import typer
from rich.console import Console

import w2v2cli
import w2v2cli.cli as cli_pkg
from w2v2cli.errors import W2V2Error

app = typer.Typer(
    name="w2v2",
    help="wav2vec 2.0 toolkit: manifest -> pretrain -> finetune -> decode -> score.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True, soft_wrap=True)  # never split a file path in an error line
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"w2v2 {w2v2cli.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    """wav2vec 2.0 toolkit: manifest -> pretrain -> finetune -> decode -> score."""
    _state["debug"] = debug


def _register_commands() -> None:
    for info in sorted(pkgutil.iter_modules(cli_pkg.__path__), key=lambda m: m.name):
        if info.name in ("app",) or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{cli_pkg.__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_commands()


def filesystem_message(err: OSError) -> str:
    """'cannot write PATH: No space left on device' from an OSError (disk full, permission, read-only, ...)."""
    import errno

    where = " -> ".join(str(p) for p in (err.filename, err.filename2) if p is not None)
    reason = err.strerror or str(err) or type(err).__name__
    verb = "cannot write" if err.errno in (errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.EFBIG) else "cannot access"
    return f"{verb} {where}: {reason}" if where else f"filesystem error: {reason}"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the app, turning W2V2Error into a message and exit code.

    In a torchrun worker the process then ends with `os._exit` (output flushed, `atexit` handlers run), skipping
    interpreter finalization: rank 1 of a 2-rank gloo fine-tuning run that had finished and saved everything
    sometimes aborted there ("terminate called without an active exception", SIGABRT; 1 of ~170 runs of a 2-rank
    loop here, more often inside the full test suite), and torchrun then reported the whole run as failed. That
    message is what a C++ thread gets when it needs the GIL while the interpreter is shutting down (Python stops
    it with pthread_exit); gloo's worker threads are the known case (pytorch/pytorch PR 179291)."""
    if not _torchrun_worker():
        _main(argv)
        return
    try:
        _main(argv)
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    _leave(code)


def _torchrun_worker() -> bool:
    """True in one of several torchrun processes. A malformed WORLD_SIZE is not guessed at here: training reports
    it as a bad torchrun environment (`w2v2cli.train.distributed.env_info`)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)  # what `sys.exit("message")` prints
    return 1


def _leave(code: int) -> None:
    """Ends the process now, skipping interpreter finalization: streams flushed and `atexit` handlers run first."""
    import atexit

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    atexit._run_exitfuncs()
    os._exit(code)


def _main(argv: list[str] | None) -> None:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except W2V2Error as err:
        if debug:
            err_console.print_exception()
        err_console.print(f"[bold red]error:[/] {err.message}", highlight=False, markup=True)
        if err.hint:
            err_console.print(f"[yellow]hint:[/] {err.hint}", highlight=False)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        err_console.print("[red]interrupted[/]")
        sys.exit(130)
    except OSError as err:  # a filesystem error nothing below turned into a W2V2Error: still one line
        if debug:
            err_console.print_exception()
        err_console.print(f"[bold red]error:[/] {filesystem_message(err)}", highlight=False, markup=True)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("[red]aborted[/]")
        sys.exit(1)
    except Exception as exc:
        # Usage errors ("No such command", bad option values) come from click, or from the copy of click that
        # newer typer bundles (typer._click); both have show() and exit_code.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        raise
