"""``runware-archive books``: the archive's costs per day beside what Runware billed, the
difference and what explains it, then the balance and how long it lasts."""

import json
from datetime import date, timedelta

import click

from archive import costs
from receiver import create_app
from receiver.provider import books as books_pass
from receiver.stats import day_option

MAX_DAYS = 366  # Runware is asked in 30-day spans: a year is 13 tasks in one POST


def explain(day):
    """What explains a day's difference, in words."""
    parts = []
    if day.missing:
        parts.append(f"{len(day.missing)} task(s) with results still missing "
                     f"(≈ ${day.missing_estimate:.4f} at their estimates): "
                     + ", ".join(day.missing))
    if day.other_keys:
        parts.append(f"${day.other_keys:.4f} spent with other API keys")
    if day.recovered:
        parts.append(f"{len(day.recovered)} task(s) recovered through getTaskDetails: "
                     + ", ".join(day.recovered))
    if day.runware is None:
        parts.append("Runware's total not known")
    return "; ".join(parts)


def money(value):
    return "—" if value is None else f"${value:.4f}"


def print_text(result):
    """The pass as aligned lines, then the account."""
    account = result["account"]
    click.echo(f"Books per day in {account['timezone']} (Runware asked to cut its days in the "
               "same zone); archive: the costs returned for the tasks submitted that day")
    click.echo(f"{'date':<10}  {'archive':>10}  {'runware':>10}  {'difference':>10}  explained by")
    for day in result["days"]:
        click.echo(f"{day.date:<10}  {money(day.archive):>10}  {money(day.runware):>10}  "
                   f"{money(day.difference):>10}  {explain(day)}".rstrip())
    if account["balance"] is not None:
        runway = account["runway_days"]
        click.echo(f"Balance {money(account['balance'])} {account['currency']}; the last 7 days "
                   f"spent {money(account['burn_7_days'])}; "
                   + (f"{runway:,.1f} days left at that pace" if runway is not None
                      else "nothing spent, so no end in sight"))
    if account["problem"]:
        click.echo(f"problem: Runware answered {account['problem']}", err=True)


@click.command("books")
@day_option("from")
@day_option("to")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"days": [...], "balance", "runwayDays"} as JSON.')
def books_command(from_, to_, as_json):
    """Reconcile the archive's costs with Runware's records (accountManagement), per day."""
    if from_ and to_ and from_ > to_:
        raise click.BadParameter("must not be before --from", param_hint="--to")
    if from_ and (to_ or date.today()) - from_ > timedelta(days=MAX_DAYS):
        raise click.BadParameter(f"a range of at most {MAX_DAYS} days", param_hint="--from")
    app = create_app()
    today = costs.local_today(costs.zone(app.config["RUNWARE_ARCHIVE_TIMEZONE"]))
    if from_ and from_ > today:
        raise click.BadParameter(f"must not be after today ({today})", param_hint="--from")
    result = books_pass.run(app, from_, to_, today=today)
    if as_json:
        click.echo(json.dumps(books_pass.as_json(result), indent=2))
        if result["account"]["problem"]:
            click.echo(f"problem: Runware answered {result['account']['problem']}", err=True)
    else:
        print_text(result)
