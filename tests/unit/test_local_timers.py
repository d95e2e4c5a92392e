"""The local runner's TimerDriver: timer functions called as the Functions host calls them."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest

from batchfx.local.durable.history import client_binding
from batchfx.local.http_server import shared_loop
from batchfx.local.timers import TimerDriver, timer_functions

# app_functions() caches by id(app): apps stay alive so an id is never reused.
_APPS: list[func.FunctionRegister] = []
BINDING = json.dumps(client_binding("http://127.0.0.1:9", "testhub"))


def timer_app(schedule: str = "* * * * * *") -> tuple[func.FunctionRegister, list[Any]]:
    """An app with one async timer function ``tick`` that records what it is given."""
    app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)
    calls: list[Any] = []

    @app.timer_trigger(schedule=schedule, arg_name="timer", run_on_startup=False)
    @app.durable_client_input(client_name="client")
    async def tick(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> str:
        calls.append((timer, client, asyncio.get_running_loop()))
        return "ticked"

    _APPS.append(app)
    return app, calls


def failing_app(started: threading.Event) -> func.FunctionRegister:
    app = func.FunctionApp()
    tries: list[int] = []

    @app.timer_trigger(schedule="* * * * * *", arg_name="timer")
    def boom(timer: func.TimerRequest) -> None:
        tries.append(1)
        if len(tries) >= 2:
            started.set()
        raise RuntimeError("boom")

    _APPS.append(app)
    return app


@pytest.fixture
def driver() -> Iterator[list[TimerDriver]]:
    drivers: list[TimerDriver] = []
    yield drivers
    for d in drivers:
        d.stop()


def test_timer_functions_are_found_with_schedule_and_client() -> None:
    app, _ = timer_app("0 */5 * * * *")
    [timer] = timer_functions(app)
    assert (timer.name, timer.schedule, timer.arg, timer.client_arg) == (
        "tick", "0 */5 * * * *", "timer", "client")


def test_a_schedule_without_seconds_is_refused() -> None:
    app, _ = timer_app("*/5 * * * *")
    with pytest.raises(ValueError, match="'\\*/5 \\* \\* \\* \\*' — expected NCRONTAB with "
                                         "seconds: 6 fields"):
        timer_functions(app)


def test_a_schedule_from_an_app_setting_is_resolved() -> None:
    app, _ = timer_app("%TICK%")
    assert timer_functions(app, {"TICK": "0 0 * * * *"})[0].schedule == "0 0 * * * *"


def test_fire_now_passes_a_timer_request_and_the_durable_client() -> None:
    app, calls = timer_app()
    bindings: list[str] = []
    d = TimerDriver(app, client_binding=lambda: (bindings.append(BINDING), BINDING)[1])
    assert d.fire_now("tick", past_due=True) == "ticked"
    [(timer, client, _)] = calls
    assert timer.past_due is True
    assert isinstance(client, df.DurableOrchestrationClient)
    assert bindings == [BINDING]


def test_async_timer_functions_run_on_the_shared_loop() -> None:
    app, calls = timer_app()
    TimerDriver(app, client_binding=lambda: BINDING).fire_now("tick")
    assert calls[0][2] is shared_loop()


def test_fire_now_of_an_unknown_function_names_the_known_ones() -> None:
    app, _ = timer_app()
    with pytest.raises(KeyError, match="no timer function 'tock'; the app has: tick"):
        TimerDriver(app, client_binding=lambda: BINDING).fire_now("tock")


def test_a_durable_client_needs_a_client_binding() -> None:
    app, _ = timer_app()
    with pytest.raises(RuntimeError, match="give TimerDriver a client_binding"):
        TimerDriver(app).fire_now("tick")


def test_the_thread_runs_a_timer_when_it_is_due(driver: list[TimerDriver]) -> None:
    app, calls = timer_app()
    ran = threading.Event()
    d = TimerDriver(app, client_binding=lambda: (ran.set(), BINDING)[1])
    driver.append(d.start())
    assert ran.wait(30)
    d.stop()
    assert calls


def test_a_run_later_than_scheduled_is_past_due(driver: list[TimerDriver]) -> None:
    app, calls = timer_app("0 0 0 * * *")  # midnight
    start = datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)
    times = iter([start])
    # After the first reading the clock says 00:05: the midnight run is five minutes late.
    ran = threading.Event()
    d = TimerDriver(app, client_binding=lambda: (ran.set(), BINDING)[1],
                    clock=lambda: next(times, start + timedelta(minutes=5, seconds=1)))
    driver.append(d.start())
    assert ran.wait(30)
    d.stop()
    assert calls[0][0].past_due is True


def test_a_failing_timer_function_keeps_being_called(driver: list[TimerDriver]) -> None:
    again = threading.Event()
    driver.append(TimerDriver(failing_app(again)).start())
    assert again.wait(30)
