"""Running the app's timer-triggered functions on their NCRONTAB schedules, as the host does.

One background thread; each timer function runs at most once at a time (the host's
singleton), gets a real ``TimerRequest`` (``past_due`` when it runs late) and, with a
``durableClient`` binding, the client JSON the host would pass.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func
from azure.functions.timer import TimerRequest
from croniter import croniter

from batchfx.local.bindings import resolve_settings, triggered
from batchfx.local.http_server import call_function

__all__ = ["TimerDriver", "TimerFunction", "timer_functions"]

logger = logging.getLogger(__name__)

# A run that starts later than this after its scheduled time is past due.
PAST_DUE_AFTER = timedelta(seconds=10)
_POLL_S = 0.5


@dataclass(frozen=True)
class TimerFunction:
    """A timer-triggered function, its NCRONTAB schedule and its argument names."""

    name: str
    schedule: str
    run_on_startup: bool
    arg: str
    client_arg: str | None
    function: Callable[..., Any]

    def next_after(self, moment: datetime) -> datetime:
        """The first scheduled time after ``moment``."""
        found: datetime = croniter(self.schedule, moment, second_at_beginning=True).get_next(
            datetime)
        return found



def timer_functions(app: func.FunctionRegister, env: Mapping[str, str] | None = None
                    ) -> list[TimerFunction]:
    """The app's timer-triggered functions with ``%SETTING%`` schedules resolved."""
    found = []
    for fn in triggered(app, "timerTrigger"):
        info = fn.trigger
        schedule = resolve_settings(str(info["schedule"]), os.environ if env is None else env,
                                    "a timer schedule")
        if len(schedule.split()) != 6 or not croniter.is_valid(schedule,
                                                               second_at_beginning=True):
            raise ValueError(f"timer function {fn.name}: schedule {schedule!r}"
                             " — expected NCRONTAB with seconds: 6 fields, e.g. '0 * * * * *'"
                             " for every minute (TimeSpan schedules are not supported locally)")
        found.append(TimerFunction(fn.name, schedule, bool(info.get("runOnStartup")),
                                   info["name"], fn.durable_client, fn.user_function))
    return found


class TimerDriver:
    """Calls the app's timer functions when due: ``start()`` … ``stop()``, or ``fire_now()``."""

    def __init__(self, app: func.FunctionRegister, *,
                 client_binding: Callable[[], str] | None = None,
                 clock: Callable[[], datetime] | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self._timers = {t.name: t for t in timer_functions(app, env)}
        self._client_binding = client_binding
        self._clock = clock or (lambda: datetime.now(UTC))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._locks = {name: threading.Lock() for name in self._timers}

    @property
    def names(self) -> list[str]:
        """The timer functions' names."""
        return sorted(self._timers)

    def start(self) -> TimerDriver:
        """Run due timers in a background thread (``runOnStartup`` ones right away)."""
        if self._thread is None and self._timers:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="batchfx-timers",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread after the function it is running, if any."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def fire_now(self, name: str, *, past_due: bool = False) -> Any:
        """Run a timer function now, in this thread; its result, or its exception."""
        if name not in self._timers:
            raise KeyError(f"no timer function {name!r}; the app has: "
                           f"{', '.join(self.names) or 'none'}")
        return self._call(self._timers[name], past_due)

    def _call(self, timer: TimerFunction, past_due: bool) -> Any:
        kwargs: dict[str, Any] = {timer.arg: TimerRequest(past_due=past_due)}
        if timer.client_arg is not None:
            if self._client_binding is None:
                raise RuntimeError(f"timer function {timer.name} needs a Durable client: give "
                                   "TimerDriver a client_binding")
            kwargs[timer.client_arg] = self._client_binding()
        with self._locks[timer.name]:  # the host runs a timer function once at a time
            return call_function(timer.function, kwargs)

    def _run(self) -> None:
        now = self._clock()
        due = {name: t.next_after(now) for name, t in self._timers.items()}
        for timer in self._timers.values():
            if timer.run_on_startup:
                self._safe_call(timer, past_due=False)
        while not self._stop.is_set():
            now = self._clock()
            for name, scheduled in sorted(due.items(), key=lambda item: item[1]):
                if scheduled > now or self._stop.is_set():
                    continue
                timer = self._timers[name]
                self._safe_call(timer, past_due=now - scheduled > PAST_DUE_AFTER)
                # Occurrences missed while it ran (or the machine slept) fold into one run.
                due[name] = timer.next_after(max(self._clock(), scheduled))
            wait = min(due.values()) - self._clock()
            self._stop.wait(min(max(wait.total_seconds(), 0.0), _POLL_S))

    def _safe_call(self, timer: TimerFunction, *, past_due: bool) -> None:
        try:
            self._call(timer, past_due)
        except Exception:
            logger.exception("timer function %s failed", timer.name)

