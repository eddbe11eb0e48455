"""``runware-archive budget``: the archive's daily and monthly budgets, kept in the
catalogue so they bind every process (the server, the worker, ``submit`` from any shell);
registered on ``runware-archive`` by :mod:`receiver.cli`, stored by
:mod:`archive.budget_store`."""

import click

from archive import budget_store, budgets
from receiver import create_app

SOURCES = {"env": "from RUNWARE_ARCHIVE_BUDGET_{}", "cli": "by the CLI", "ui": "on /costs"}


def _catalogue_and_config():
    app = create_app()
    return app.extensions["catalogue"], app.config


def describe(conn, config):
    """One line per period: its limit, who set it and when, and what it holds now."""
    rows, lines = budget_store.stored(conn), []
    status = {s["period"]: s for s in budgets.status(conn, budgets.current(conn, config))}
    for period in budget_store.PERIODS:
        row = rows.get(period)
        if not row or row["limit"] is None:
            how = f" (cleared {SOURCES[row['source']].format(period.upper())} at {row['set_at']})" \
                if row else ""
            lines.append(f"{period}: no budget{how}")
            continue
        now = status[period]
        lines.append(f"{period}: ${row['limit']:.4f}, set {SOURCES[row['source']].format(period.upper())}"
                     f" at {row['set_at']}; {now['key']}: ${now['committed']:.4f} spent or in"
                     f" flight ({now['ratio']:.0%})")
    return lines


@click.group("budget")
def budget_group():
    """The daily and monthly budgets every process obeys (see README, Cost tracking)."""


@budget_group.command("show")
def show_command():
    """Each budget, where it was set, and how much of it is spent or in flight."""
    catalogue, config = _catalogue_and_config()
    for line in describe(catalogue.conn, config):
        click.echo(line)


@budget_group.command("set")
@click.option("--daily", type=click.FloatRange(min=0), help="USD per local day.")
@click.option("--monthly", type=click.FloatRange(min=0), help="USD per local month.")
def set_command(daily, monthly):
    """Set the daily and/or monthly budget (a task that would pass one is refused)."""
    given = {k: v for k, v in (("daily", daily), ("monthly", monthly)) if v is not None}
    if not given:
        raise click.UsageError("give --daily and/or --monthly (USD)")
    catalogue, config = _catalogue_and_config()
    try:
        budget_store.set_limits(catalogue, "cli", **given)
    except ValueError as exc:  # NaN and infinity pass click's range
        raise click.BadParameter(str(exc), param_hint="--daily/--monthly")
    for line in describe(catalogue.conn, config):
        click.echo(line)


@budget_group.command("clear")
@click.option("--daily", is_flag=True, help="Clear the daily budget.")
@click.option("--monthly", is_flag=True, help="Clear the monthly budget.")
def clear_command(daily, monthly):
    """Clear the daily and/or monthly budget (both when neither is named)."""
    periods = [p for p, on in (("daily", daily), ("monthly", monthly)) if on] or \
        list(budget_store.PERIODS)
    catalogue, config = _catalogue_and_config()
    budget_store.set_limits(catalogue, "cli", **{p: None for p in periods})
    for line in describe(catalogue.conn, config):
        click.echo(line)
