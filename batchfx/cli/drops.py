"""``batchfx drops``: what became of recent blob drops (submitted jobs, rejected drops)."""

from __future__ import annotations

import json

import click

from batchfx.cli.common import api_for, key_option, url_option

__all__ = ["drops"]


@click.command()
@url_option
@key_option
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
@click.option("--json", "as_json", is_flag=True, help="Print the records as JSON.")
def drops(url: str | None, key: str | None, limit: int, as_json: bool) -> None:
    """List recent blob drops: the job each submitted, or why it was rejected."""
    records = api_for(url, key).listed("drops", f"?limit={limit}")
    if as_json:
        click.echo(json.dumps(records, indent=2))
        return
    for record in records:
        outcome = record["job_id"] if record["state"] == "submitted" else record["reason"]
        click.echo(f"{record['time']}\t{record['state']}\t{record['blob']}\t{outcome}")
