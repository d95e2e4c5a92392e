"""``batchfx schedule``: create, list, show, enable, disable and delete schedules."""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any

import click
import yaml

from batchfx.cli.common import api_for, key_option, url_option

__all__ = ["schedule"]




def _jsonable(value: Any) -> Any:
    # YAML reads 2026-01-31T02:00:00Z as a datetime; the API takes ISO 8601 text.
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _read(file: Path) -> Any:
    from batchfx.core.spec_io import load_yaml

    try:
        return _jsonable(load_yaml(file.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"{file}: cannot read the schedule ({exc})") from None
    except yaml.YAMLError as exc:
        raise click.ClickException(f"{file}: not valid YAML or JSON: {exc}") from None


def _when(view: dict[str, Any]) -> str:
    if "cron" in view:
        return f"cron {view['cron']['expression']!r}"
    r = view["recurrence"]
    pattern = ", ".join(f"{k} {r[k]}" for k in ("week_days", "month_days", "hours", "minutes")
                        if k in r)
    every = f"every {r['interval']} {r['frequency']}"
    return f"{every} ({pattern})" if pattern else every


def _line(view: dict[str, Any]) -> str:
    state = "enabled" if view["enabled"] else "disabled"
    last = view.get("last_job_id") or "-"
    error = "  ERROR: " + view["last_error"] if view.get("last_error") else ""
    return (f"{view['name']}\t{state}\t{_when(view)}\tnext {view.get('next_due') or '-'}"
            f"\tlast job {last}{error}")


@click.group()
def schedule() -> None:
    """Run a pipeline, deployment or job on a recurrence or a cron expression (UTC)."""


@schedule.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@url_option
@key_option
def create(file: Path, url: str | None, key: str | None) -> None:
    """Create a schedule from a YAML or JSON FILE."""
    view = api_for(url, key).post("schedules", _read(file))
    click.echo(f"{view['name']}: {_when(view)}, next due {view.get('next_due') or '-'}")


@schedule.command(name="list")
@url_option
@key_option
@click.option("--json", "as_json", is_flag=True, help="Print the schedules as JSON.")
def list_(url: str | None, key: str | None, as_json: bool) -> None:
    """List schedules with their next due time and last job."""
    views = api_for(url, key).listed("schedules")
    if as_json:
        click.echo(json.dumps(views, indent=2))
        return
    for view in views:
        click.echo(_line(view))


@schedule.command()
@click.argument("name")
@url_option
@key_option
def show(name: str, url: str | None, key: str | None) -> None:
    """Show a schedule, its next due time and its last job as JSON."""
    click.echo(json.dumps(api_for(url, key).show("schedules", name), indent=2))


@schedule.command()
@click.argument("name")
@url_option
@key_option
def enable(name: str, url: str | None, key: str | None) -> None:
    """Fire the schedule again from its next due time on (missed ones are not made up)."""
    view = api_for(url, key).post(f"schedules/{name}/enable")
    click.echo(f"{name} enabled, next due {view.get('next_due') or '-'}")


@schedule.command()
@click.argument("name")
@url_option
@key_option
def disable(name: str, url: str | None, key: str | None) -> None:
    """Stop firing the schedule (jobs it started go on)."""
    api_for(url, key).post(f"schedules/{name}/disable")
    click.echo(f"{name} disabled")


@schedule.command()
@click.argument("name")
@url_option
@key_option
def delete(name: str, url: str | None, key: str | None) -> None:
    """Delete the schedule (jobs it started stay)."""
    api_for(url, key).delete("schedules", name)
    click.echo(f"{name} deleted")
