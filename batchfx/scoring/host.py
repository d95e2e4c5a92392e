"""The child process that runs a user's scoring script: ``python -m batchfx.scoring.host``.

Started by ``ScriptProcess`` with two pipe descriptors (``--fd-in``, ``--fd-out``) so that
whatever the script prints to stdout/stderr (the worker log) cannot corrupt the protocol.
Frames are length-prefixed pickles (``multiprocessing.connection.Connection``).

    parent -> child                     child -> parent
    ("init", ScriptConfig)              ("ready", worker_id) | ("error", TryError)
    ("run", paths | TabularBatch,       ("done", rows, succeeded, failed, part, header, items,
     MiniBatchContext)                   segments) | ("error", TryError, items | None)
    ("shutdown",)                       ("bye", TryError | None), then the child exits

While init() or run() runs, the script's ``get_secret`` sends ``("secret", name)`` and the
parent answers ``("secret", value)`` or ``("secret-error", type, message)``: the parent
holds the credentials, this process none (``batchfx.scoring.secrets``).

A ``TabularBatch`` is read here into one DataFrame (``items`` = its rows), so the frame
never crosses the pipe; a list of paths is passed to run() as is. What run() returns is
shaped here too (``join_input``; ``per_input_file`` segments, see ``scoring.shaping``).

After an init error the child exits by itself. It also exits (taking its process group
along) when the parent goes away: EOF on the pipe when idle, a watchdog thread otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import importlib.util
import inspect
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from types import ModuleType
from typing import Any, cast

from batchfx.core.row_format import Rows, format_rows, format_segments
from batchfx.core.script_contract import (
    MiniBatchContext,
    ScriptConfig,
    Segment,
    TryError,
    TryPhase,
    evaluate_result,
    is_dataframe,
)
from batchfx.scoring import aml_run
from batchfx.scoring.secrets import ask_parent
from batchfx.scoring.shaping import (
    ShapeError,
    file_runs,
    join_input,
    one_row_per_item,
    snapshot,
    source_runs,
)
from batchfx.tabular.batch import TabularBatch

__all__ = ["main"]

_PARENT_POLL_SECONDS = 0.5
_FALLBACK_MODULE_NAME = "batchfx_entry_script"
_log = logging.getLogger("batchfx.scoring.host")  # __name__ is "__main__" under -m


def _is_internal(filename: str) -> bool:
    return filename == __file__ or filename.startswith("<frozen importlib")


def _trim(te: traceback.TracebackException, seen: set[int]) -> None:
    """Drop this module's and importlib's frames: the user should see their own code."""
    seen.add(id(te))
    te.stack = traceback.StackSummary.from_list(
        [f for f in te.stack if not _is_internal(f.filename)]
    )
    for chained in (te.__cause__, te.__context__):
        if chained is not None and id(chained) not in seen:
            _trim(chained, seen)


def script_error(phase: TryPhase, exc: BaseException, where: str) -> TryError:
    """A TryError with the script's own traceback; SystemExit is named with its code."""
    te = traceback.TracebackException.from_exception(exc)
    _trim(te, set())
    if isinstance(exc, SystemExit):
        message = f"{where} called sys.exit({exc.code!r})"
    else:
        message = str(exc) or type(exc).__name__
    return TryError(
        phase=phase, type=type(exc).__qualname__, message=message, traceback="".join(te.format())
    )


def _load_error(type_: str, message: str) -> TryError:
    return TryError(phase=TryPhase.LOAD, type=type_, message=message, traceback=message)


def _second_argument(run: Callable[..., Any]) -> str | None:
    """What run() takes second: ``"context"`` for run(mini_batch, context), ``"arguments"``
    for the preview signature run(input_data, arguments) (the job's arguments), or None."""
    try:
        params = list(inspect.signature(run).parameters.values())
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p for p in params if p.kind in kinds]
    if len(positional) < 2:
        return None
    return "arguments" if positional[1].name == "arguments" else "context"


def _prepare(config: ScriptConfig, script_path: str) -> None:
    """What Azure ML does before importing the entry script."""
    code_dir = os.path.abspath(config.code_dir)
    # Paths of the config are relative to the worker's folder, not the code's: made absolute
    # before changing into the code folder.
    model_dir = os.path.abspath(config.model_dir) if config.model_dir is not None else None
    output_dir = os.path.abspath(config.output_dir)
    aml_run.install(config)  # azureml.core's Model and Run, where the package is missing
    os.chdir(code_dir)
    script_dir = os.path.dirname(script_path)
    sys.path[:0] = [code_dir] if script_dir == code_dir else [code_dir, script_dir]
    os.environ.update(dict(config.environment_variables))
    if model_dir is not None:
        os.environ["AZUREML_MODEL_DIR"] = model_dir
    os.makedirs(output_dir, exist_ok=True)
    os.environ["AZUREML_BI_OUTPUT_PATH"] = output_dir
    sys.argv = [script_path, *config.arguments]
    level = logging.getLevelNamesMapping().get(config.logging_level.upper(), logging.INFO)
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s [pid %(process)d] %(message)s",
        stream=sys.stderr,
        force=True,
    )


def _import_script(path: str) -> ModuleType:
    # Imported under its own name (not __main__), as Azure ML does, so that pickling and
    # dataclasses defined in the script work.
    name = os.path.splitext(os.path.basename(path))[0]
    if not name.isidentifier() or name in sys.modules:
        name = _FALLBACK_MODULE_NAME
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


class ScriptHost:
    """Loads one scoring script and serves init/run/shutdown requests for it."""

    def __init__(self, notify: Callable[[tuple[Any, ...]], None] | None = None) -> None:
        # ``notify`` tells the parent things before run() returns (the rows read), so a
        # run() that hangs or kills the process still has its rows counted.
        self._notify = notify
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self._config: ScriptConfig | None = None
        self._module: ModuleType | None = None
        self._run: Callable[..., Any] | None = None
        self._second: str | None = None

    def init(self, config: ScriptConfig) -> tuple[Any, ...]:
        """Prepare the process, import the entry script and call its init()."""
        self._config = config
        script_path = os.path.abspath(os.path.join(config.code_dir, config.entry_script))
        if not os.path.isfile(script_path):
            return "error", _load_error(
                "FileNotFoundError",
                f"entry_script {config.entry_script!r} not found in source_directory "
                f"{config.code_dir!r} (looked for {script_path})",
            )
        try:
            _prepare(config, script_path)
            module = _import_script(script_path)
        except BaseException as exc:
            return "error", script_error(TryPhase.LOAD, exc, f"importing {config.entry_script}")
        run = getattr(module, "run", None)
        if not callable(run):
            return "error", _load_error(
                "ScriptError",
                f"{script_path} has no run() function; define run(mini_batch)",
            )
        init = getattr(module, "init", None)
        if callable(init):
            _log.info("Worker %s: calling init() of %s", self.worker_id, config.entry_script)
            try:
                init()
            except BaseException as exc:
                return "error", script_error(TryPhase.INIT, exc, "init()")
        self._module, self._run = module, run
        self._second = _second_argument(run)
        return "ready", self.worker_id

    def run(self, mini_batch: list[str] | TabularBatch,
            context: MiniBatchContext) -> tuple[Any, ...]:
        """Call run() for one mini-batch and format what it returned."""
        if self._run is None or self._config is None:
            raise RuntimeError("run requested before a successful init")
        config = self._config
        data: Any
        sources: Any = None
        if isinstance(mini_batch, TabularBatch):
            try:
                data = _read_rows(mini_batch)
                if config.per_input_file:
                    sources = _row_sources(data)
            except Exception as exc:
                error = script_error(TryPhase.INPUT, exc, "reading the mini-batch")
                message = f"cannot read the mini-batch's rows: {error.message}"
                return "error", TryError(TryPhase.INPUT, error.type, message,
                                         error.traceback), None
        else:
            data = list(mini_batch)
        items = len(data)
        if self._notify is not None and isinstance(mini_batch, TabularBatch):
            self._notify(("read", items))
        original = snapshot(data) if config.join_input and is_dataframe(data) else None
        started = time.monotonic()
        try:
            args: tuple[Any, ...] = (data,)
            if self._second == "context":
                args = (data, context)
            elif self._second == "arguments":
                args = (data, list(config.arguments))
            result = self._run(*args)
        except BaseException as exc:
            return "error", script_error(TryPhase.RUN, exc, "run()"), items
        finally:
            _log.debug(
                "Worker %s: run() of mini-batch %s took %.3fs",
                self.worker_id,
                context.mini_batch_id,
                time.monotonic() - started,
            )
        counts = evaluate_result(result, items)
        if isinstance(counts, TryError):
            return "error", counts, items
        fmt = config.output_format
        try:
            runs = _runs(config, result, items, sources)
            if original is not None:
                result = join_input(original, result)
            if runs is None:
                part, header = format_rows(cast(Rows, result), fmt, config.append_row_header)
                segments: tuple[Segment, ...] = ()
            else:
                part, header, sizes = format_segments(
                    cast(Rows, result), fmt, config.append_row_header, [n for _, n in runs])
                segments = tuple((p, n, b) for (p, n), b in zip(runs, sizes, strict=True))
        except ShapeError as exc:
            return "error", TryError(TryPhase.RETURN, "ValueError", str(exc), str(exc)), items
        except Exception as exc:
            error = script_error(TryPhase.RETURN, exc, "run()")
            message = f"run()'s result cannot be written as {fmt}: {error.message}"
            return "error", TryError(TryPhase.RETURN, error.type, message,
                                     error.traceback), items
        if config.max_output_bytes and len(part) > config.max_output_bytes:
            return "error", _too_large(len(part), config.max_output_bytes, counts.rows), items
        return ("done", counts.rows, counts.succeeded, counts.failed, part, header, items,
                segments)

    def shutdown(self) -> tuple[Any, ...]:
        """Call the script's shutdown() when it has one."""
        hook = getattr(self._module, "shutdown", None)
        if not callable(hook):
            return "bye", None
        try:
            hook()
        except BaseException as exc:
            _log.exception("Worker %s: shutdown() raised", self.worker_id)
            return "bye", script_error(TryPhase.RUN, exc, "shutdown()")
        return "bye", None


def _runs(config: ScriptConfig, result: Any, items: int,
          sources: Any) -> list[tuple[int, int]] | None:
    """(input position, rows) of the result's rows for per_input_file, else None."""
    if not config.per_input_file:
        return None
    unit = "files" if sources is None else "rows"
    one_row_per_item(len(result), items, option="output_action per_input_file", unit=unit)
    return file_runs(items) if sources is None else source_runs(sources, items)


def _row_sources(frame: Any) -> Any:
    """Which slice (input file) each run of the frame's rows came from (published by
    ``_read_rows``)."""
    from batchfx.tabular.reading import row_sources

    sources = row_sources(frame)
    if sources is None:
        raise RuntimeError("per_input_file: the rows' input files are not known")
    return sources


def _too_large(size: int, limit: int, rows: int) -> TryError:
    mib = 1024 * 1024
    message = (f"run() returned {size / mib:.1f} MiB of output for {rows} rows, over the limit "
               f"of {limit / mib:g} MiB per mini-batch (app setting "
               "BATCHFX_MAX_MINI_BATCH_OUTPUT_MB): return smaller rows, write large results "
               "as files to AZUREML_BI_OUTPUT_PATH, or use smaller mini-batches")
    return TryError(TryPhase.RETURN, "OutputTooLarge", message, message)


def _read_rows(batch: TabularBatch) -> Any:
    # pandas and pyarrow: only when needed
    from batchfx.tabular.reading import publish_row_sources, read_batch_with_sources

    frame, sources = read_batch_with_sources(batch)
    # Where each row comes from, for scripts that ask (the built-in MLflow script's
    # file_name and row): reading.row_sources(frame).
    publish_row_sources(frame, sources)
    return frame


def _die_with_parent(parent_pid: int) -> None:
    """Watchdog: once the parent is gone, kill this process and its process group."""
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_POLL_SECONDS)
    if os.getpgid(0) == os.getpid():  # our own group: takes the script's subprocesses along
        os.killpg(0, signal.SIGKILL)
    os._exit(1)


def serve(conn_in: Connection, conn_out: Connection) -> int:
    """Answer the parent's requests until shutdown, an init error or EOF."""
    aml_run.set_broker(ask_parent(conn_in, conn_out))
    host = ScriptHost(notify=conn_out.send)
    while True:
        try:
            message = conn_in.recv()
        except EOFError:  # the parent closed the pipe or died
            return 0
        kind = message[0]
        if kind == "init":
            reply = host.init(message[1])
            conn_out.send(reply)
            if reply[0] == "error":
                return 1
        elif kind == "run":
            conn_out.send(host.run(message[1], message[2]))
        elif kind == "shutdown":
            conn_out.send(host.shutdown())
            return 0
        else:
            raise RuntimeError(f"unknown request {kind!r}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the child process."""
    parser = argparse.ArgumentParser(prog="python -m batchfx.scoring.host")
    parser.add_argument("--fd-in", type=int, required=True)
    parser.add_argument("--fd-out", type=int, required=True)
    parser.add_argument("--parent-pid", type=int, default=None)
    args = parser.parse_args(argv)
    # Subprocesses of the script must not hold the pipes open after this process dies.
    os.set_inheritable(args.fd_in, False)
    os.set_inheritable(args.fd_out, False)
    parent_pid = args.parent_pid if args.parent_pid is not None else os.getppid()
    threading.Thread(
        target=_die_with_parent, args=(parent_pid,), name="parent-watchdog", daemon=True
    ).start()
    faulthandler.enable()  # a segfault in native code leaves a traceback in the worker log
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # stacks of a hung run()
    conn_in = Connection(args.fd_in, writable=False)
    conn_out = Connection(args.fd_out, readable=False)
    return serve(conn_in, conn_out)


def _exit(code: int) -> None:
    # os._exit: non-daemon threads the script started must not keep the process alive.
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
