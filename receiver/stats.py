"""``runware-archive stats``: what ``GET /api/costs`` answers, as a table in the terminal."""

import click

from archive import books, budgets, costs
from receiver import create_app


def day_option(name):
    """A ``--from``/``--to`` option taking YYYY-MM-DD."""
    def parse(ctx, param, value):
        try:
            return costs.parse_day(value, f"--{name}") if value else None
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return click.option(f"--{name}", f"{name}_", callback=parse, metavar="YYYY-MM-DD",
                        help=f"{'First' if name == 'from' else 'Last'} local date (inclusive).")


def format_table(report):
    """The report's groups as aligned text lines, then the total."""
    rows = [(str(g["key"] if g["key"] is not None else "(none)"), f"${g['cost']:.4f}",
             str(g["results"]), str(g["resultsWithoutCost"] or "")) for g in report["groups"]]
    head = (report["group"], "cost (USD)", "results", "without cost")
    total = ("total", f"${report['total']:.4f}", str(report["results"]),
             str(report["resultsWithoutCost"] or ""))
    widths = [max(len(r[i]) for r in (head, total, *rows)) for i in range(4)]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return [line(head), rule, *(line(r) for r in rows), rule, line(total)]


@click.command("stats")
@day_option("from")
@day_option("to")
@click.option("--group", type=click.Choice(costs.GROUPS), default="day", show_default=True,
              help="Group by local day, ISO week, month, model, size, label or provider.")
def stats(from_, to_, group):
    """Print what the returned costs add up to, grouped, in the configured time zone."""
    if from_ and to_ and from_ > to_:
        raise click.BadParameter("must not be before --from", param_hint="--to")
    app = create_app()
    tz = costs.zone(app.config["RUNWARE_ARCHIVE_TIMEZONE"])
    catalogue = app.extensions["catalogue"]
    report = costs.report(catalogue.conn, tz, first=from_, last=to_, group=group)
    span = f"{report['from'] or 'the start'} to {report['to'] or 'now'}"
    click.echo(f"Costs from {span}, by {group} ({tz.key}, USD as returned by the provider)")
    for text in format_table(report):
        click.echo(text)
    if report["resultsWithoutCost"]:
        click.echo(f"{report['resultsWithoutCost']} result(s) came without a cost; not counted "
                   f"above (estimated ${report['estimateWithoutCost']:.4f})")
    for period in budgets.status(catalogue.conn, budgets.current(catalogue.conn, app.config)):
        flag = "  WARNING" if period["warning"] else ""
        click.echo(f"{period['period']} budget {period['key']}: ${period['committed']:.4f} "
                   f"spent or in flight of ${period['limit']:.4f} "
                   f"({period['ratio']:.0%}){flag}")
    click.echo(runway_line(books.stored_account(catalogue.conn)))


def runway_line(account):
    """The balance and days left as the last books pass found them (a read: ``stats``
    asks Runware nothing)."""
    if account is None or account["balance"] is None:
        return ("Runware balance: not known yet (runware-archive books asks; the worker "
                "does daily)")
    runway = account["runway_days"]
    left = (f"about {runway:,.1f} days left at that pace" if runway is not None
            else "nothing spent, so no end in sight")
    return (f"Runware balance ${account['balance']:.4f} {account['currency'] or 'USD'} "
            f"(checked {account['checked_at'][:16].replace('T', ' ')} UTC): the last 7 days "
            f"spent ${account['burn_7_days'] or 0:.4f}, {left}")
