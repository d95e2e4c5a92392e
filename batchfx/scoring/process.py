"""The parent side: keeps one scoring-script child process alive across mini-batches.

``init()`` runs once per worker process and script config (``ScriptConfig.key``), as in
Azure ML. The child is a separate process so that a hung run() can really be stopped
(SIGKILL on its process group) and a crash (os._exit, OOM kill) is a failed try, not a
dead Functions worker. Nothing here knows about Azure.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from types import TracebackType
from typing import Any

from batchfx.core.script_contract import (
    MiniBatchContext,
    ScriptConfig,
    TryError,
    TryOutcome,
    TryPhase,
)
from batchfx.scoring.secrets import answer_secret, script_environment
from batchfx.tabular.batch import TabularBatch

__all__ = ["ScriptProcess"]

_log = logging.getLogger(__name__)
_POLL_SECONDS = 0.5  # how often a wait also checks that the child is still alive
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])


def _child_pythonpath(environment: tuple[str, ...] = ()) -> str:
    """PYTHONPATH that lets ``-m batchfx.scoring.host`` import this very batchfx, then the
    script's environment (its own packages, ahead of the app's)."""
    # Needed when batchfx is app code (the Functions app folder), not an installed package;
    # an installed one is found anyway, and its site-packages must not go before the stdlib.
    site_dirs = {str(Path(sysconfig.get_path(k)).resolve()) for k in ("purelib", "platlib")}
    paths = [] if _PACKAGE_ROOT in site_dirs else [_PACKAGE_ROOT]
    paths += list(environment)
    paths += [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return os.pathsep.join(dict.fromkeys(paths))


class _ChildTimeout(Exception):
    """The child did not answer before the deadline."""


class _ChildGone(Exception):
    """The child died or broke the protocol."""


def _describe_exit(returncode: int | None) -> str:
    if returncode is None:
        return "stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = " (killed from outside, possibly for running out of memory)"
        return f"was killed by {name}" + (hint if -returncode == signal.SIGKILL else "")
    return f"exited with code {returncode}"


class _Child:
    """One running ``batchfx.scoring.host`` process and its two pipe ends."""

    def __init__(self, config: ScriptConfig) -> None:
        self.key = config.key
        self.log_path = config.log_path
        self._run_info = config.run_info
        self.worker_id = ""
        child_in, parent_out = os.pipe()
        parent_in, child_out = os.pipe()
        log = subprocess.DEVNULL
        try:
            if config.log_path:
                Path(config.log_path).parent.mkdir(parents=True, exist_ok=True)
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
                log = os.open(config.log_path, flags, 0o644)
            # No credential in the script's process: the worker brokers what it needs.
            env = dict(script_environment(os.environ), PYTHONUNBUFFERED="1")
            env["PYTHONPATH"] = _child_pythonpath(config.python_path)
            if not env["PYTHONPATH"]:
                del env["PYTHONPATH"]
            command = [sys.executable, "-m", "batchfx.scoring.host"]
            command += ["--fd-in", str(child_in), "--fd-out", str(child_out)]
            command += ["--parent-pid", str(os.getpid())]
            self.proc = subprocess.Popen(
                command,
                pass_fds=(child_in, child_out),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                process_group=0,  # own group: killpg stops the script's subprocesses too
            )
        except BaseException:
            os.close(parent_in)
            os.close(parent_out)
            raise
        finally:
            os.close(child_in)
            os.close(child_out)
            if log != subprocess.DEVNULL:
                os.close(log)
        self.worker_id = f"{socket.gethostname()}:{self.proc.pid}"
        self._recv_conn = Connection(parent_in, writable=False)
        self._send_conn = Connection(parent_out, readable=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, message: tuple[Any, ...]) -> None:
        try:
            self._send_conn.send(message)
        except OSError as exc:
            raise _ChildGone(f"closed its pipe ({exc})") from exc

    def receive(self, timeout: float) -> tuple[Any, ...]:
        """The next reply; raises _ChildTimeout after ``timeout`` s, _ChildGone if it died."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _ChildTimeout()
            try:
                if self._recv_conn.poll(min(remaining, _POLL_SECONDS)):
                    reply: tuple[Any, ...] = self._recv_conn.recv()
                    if reply[0] != "secret":
                        return reply
                    self.send(answer_secret(self._run_info, reply[1]))  # get_secret()
                    continue
            except EOFError:
                raise _ChildGone(self._death()) from None
            except Exception as exc:  # a broken frame: treat the child as lost
                raise _ChildGone(f"sent an unreadable reply ({exc!r})") from exc
            # A grandchild that inherited the pipe could keep EOF from arriving.
            if not self.alive() and not self._recv_conn.poll(0):
                raise _ChildGone(self._death())

    def _death(self) -> str:
        try:
            returncode: int | None = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            returncode = None
        return _describe_exit(returncode)

    def kill(self) -> None:
        """SIGKILL the child's process group (the script's own subprocesses with it, also
        when the child has exited by itself), reap it and close the pipes."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):  # no process of the group is left
            if self.proc.returncode is None:
                self.proc.kill()
        self.proc.wait()
        self.close_pipes()

    def close_pipes(self) -> None:
        self._recv_conn.close()
        self._send_conn.close()


def _planned(mini_batch: list[str] | TabularBatch) -> int:
    """Items of a mini-batch before the child reads it: files, or rows as planned."""
    return mini_batch.rows if isinstance(mini_batch, TabularBatch) else len(mini_batch)


class ScriptProcess:
    """Runs mini-batches through a scoring script in a child process kept across calls.

    Thread-safe: calls are serialized. Use one per concurrent worker.
    """

    def __init__(self, *, init_timeout: float = 600.0, shutdown_timeout: float = 5.0) -> None:
        if init_timeout <= 0:
            raise ValueError(f"init_timeout: {init_timeout!r} must be greater than 0")
        if shutdown_timeout <= 0:
            raise ValueError(f"shutdown_timeout: {shutdown_timeout!r} must be greater than 0")
        self.init_timeout = init_timeout
        self.shutdown_timeout = shutdown_timeout
        self._child: _Child | None = None
        self._lock = threading.Lock()

    @property
    def child_pid(self) -> int | None:
        """The pid of the live child process, if any."""
        child = self._child
        return child.pid if child is not None and child.alive() else None

    def run_mini_batch(
        self,
        config: ScriptConfig,
        mini_batch: list[str] | TabularBatch,
        context: MiniBatchContext,
        timeout: float,
    ) -> TryOutcome:
        """Run one try of a mini-batch (local file paths, or tabular slices to read into a
        DataFrame in the child); init() first when needed."""
        if timeout <= 0:
            raise ValueError(f"timeout: {timeout!r} must be greater than 0")
        with self._lock:
            started = time.monotonic()
            child = self._child
            if child is not None and (child.key != config.key or not child.alive()):
                if child.key != config.key:
                    _log.info("Script worker: script config changed; stopping child %d", child.pid)
                else:
                    _log.warning("Script worker: child %d died while idle", child.pid)
                self._stop(child)
                child = None
            if child is None:
                child, error = self._start(config, context)
                if error is not None:
                    seconds = time.monotonic() - started
                    return TryOutcome.failure(error, _planned(mini_batch), seconds,
                                              child.worker_id)
            return self._run(child, mini_batch, context, timeout)

    def _start(
        self, config: ScriptConfig, context: MiniBatchContext
    ) -> tuple[_Child, TryError | None]:
        """Start a child and init the script; on failure no child is kept."""
        child = _Child(config)
        _log.info(
            "Script worker: started child %d for %s (job %s, key %s)",
            child.pid,
            config.entry_script,
            context.job_id,
            config.key,
        )
        try:
            child.send(("init", config))
            reply = child.receive(self.init_timeout)
        except _ChildTimeout:
            child.kill()
            message = f"init() did not return within init_timeout={self.init_timeout:g}s"
            return child, TryError(TryPhase.TIMEOUT, "TimeoutError", message, message)
        except _ChildGone as exc:
            child.kill()
            return child, self._crash(child, f"{exc} during init()")
        if reply[0] == "ready":
            child.worker_id = reply[1]
            self._child = child
            return child, None
        error: TryError = reply[1]
        _log.warning(
            "Script worker: job %s: %s failed in child %d: %s",
            context.job_id,
            config.entry_script,
            child.pid,
            error,
        )
        self._reap(child)
        return child, error

    def _run(
        self, child: _Child, mini_batch: list[str] | TabularBatch, context: MiniBatchContext,
        timeout: float,
    ) -> TryOutcome:
        items = _planned(mini_batch)
        payload = mini_batch if isinstance(mini_batch, TabularBatch) else list(mini_batch)
        started = time.monotonic()
        try:
            child.send(("run", payload, context))
            reply = child.receive(timeout)
            while reply[0] == "read":  # the rows of a tabular mini-batch, read before run()
                items = int(reply[1])
                left = timeout - (time.monotonic() - started)
                if left <= 0:
                    raise _ChildTimeout()
                reply = child.receive(left)
        except _ChildTimeout:
            _log.warning(
                "Script worker: mini-batch %s of job %s: run() timed out after %gs; "
                "killing child %d",
                context.mini_batch_id,
                context.job_id,
                timeout,
                child.pid,
            )
            self._dump_stacks(child)
            self._forget(child)
            message = f"run() did not return within run_invocation_timeout={timeout:g}s"
            error = TryError(TryPhase.TIMEOUT, "TimeoutError", message, message)
            return TryOutcome.failure(error, items, time.monotonic() - started, child.worker_id)
        except _ChildGone as exc:
            self._forget(child)
            error = self._crash(child, f"{exc} during run() of mini-batch {context.mini_batch_id}")
            _log.warning("Script worker: job %s: %s", context.job_id, error.message)
            return TryOutcome.failure(error, items, time.monotonic() - started, child.worker_id)
        seconds = time.monotonic() - started
        if reply[0] == "error":
            # The child says how many rows it read, when it got that far.
            read = reply[2] if len(reply) > 2 and reply[2] is not None else items
            return TryOutcome.failure(reply[1], read, seconds, child.worker_id)
        _, rows, succeeded, failed, part, header, items, segments = reply
        return TryOutcome(
            items=items,
            succeeded=succeeded,
            failed=failed,
            rows=rows,
            part=part,
            header=header,
            error=None,
            seconds=seconds,
            worker=child.worker_id,
            segments=segments,
        )

    @staticmethod
    def _crash(child: _Child, what: str) -> TryError:
        message = f"the worker process {child.pid} {what}"
        details = message
        if child.log_path:
            details += f"\n(its stdout/stderr are in {child.log_path})"
        return TryError(TryPhase.CRASH, "WorkerCrashed", message, details)

    @staticmethod
    def _dump_stacks(child: _Child) -> None:
        # Ask faulthandler in the child for the hung stacks, written to the worker log.
        if child.log_path and child.alive():
            try:
                os.kill(child.pid, signal.SIGUSR1)
                time.sleep(0.2)
            except ProcessLookupError:
                pass

    def _forget(self, child: _Child) -> None:
        child.kill()
        if self._child is child:
            self._child = None

    def _reap(self, child: _Child) -> None:
        """Wait a moment for a child that exits by itself, then make sure it is gone."""
        try:
            child.proc.wait(timeout=self.shutdown_timeout)
        except subprocess.TimeoutExpired:
            _log.warning("Script worker: child %d did not exit; killing it", child.pid)
        child.kill()

    def _stop(self, child: _Child) -> None:
        """Ask the child to call shutdown() and exit; kill it if it does not."""
        if self._child is child:
            self._child = None
        if child.alive():
            try:
                child.send(("shutdown",))
                reply = child.receive(self.shutdown_timeout)
                if reply[0] == "bye" and reply[1] is not None:
                    _log.warning("Script worker: child %d: %s", child.pid, reply[1])
            except (_ChildTimeout, _ChildGone) as exc:
                _log.warning(
                    "Script worker: child %d did not shut down cleanly (%r)", child.pid, exc
                )
        self._reap(child)
        _log.info("Script worker: child %d stopped", child.pid)

    def close(self) -> None:
        """Shut the child down (shutdown() of the script), killing it if it does not exit."""
        with self._lock:
            if self._child is not None:
                self._stop(self._child)

    def __enter__(self) -> ScriptProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
