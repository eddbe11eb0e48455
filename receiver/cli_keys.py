"""``runware-archive keys``: the client keys of the Runware-compatible endpoint ``POST /v1``
(registered on ``runware-archive`` by :mod:`receiver.cli`; the keys live in
:mod:`archive.keys`)."""

import click

from archive import keys, relay
from receiver import create_app


def _usd(value):
    return "-" if value is None else f"${value:.4f}"


@click.group("keys")
def keys_group():
    """Client keys for POST /v1: existing Runware code sends one instead of a Runware key."""


@keys_group.command("create")
@click.option("--label", required=True, help="The label of every task sent with the key.")
@click.option("--daily-budget", type=click.FloatRange(min=0), help="USD per local day.")
@click.option("--monthly-budget", type=click.FloatRange(min=0), help="USD per local month.")
@click.option("--relay-host", "relay_hosts", multiple=True, metavar="SCHEME://HOST[:PORT]",
              help="Where the key's tasks may have their results relayed (their own "
                   "webhookURL); repeat for several. http:// and private addresses only "
                   "when named exactly.")
def create_command(label, daily_budget, monthly_budget, relay_hosts):
    """Make a key; it is printed once, alone on the last line, and never kept."""
    catalogue = create_app().extensions["catalogue"]
    try:
        row, secret = keys.create(catalogue, label, daily=daily_budget,
                                  monthly=monthly_budget, relay_hosts=relay_hosts)
    except ValueError as exc:
        hint = "--relay-host" if "entry" in str(exc) else "--label"
        raise click.BadParameter(str(exc), param_hint=hint)
    click.echo(f"key {row['id']} ({row['label']}): daily budget {_usd(row['daily_budget'])}, "
               f"monthly budget {_usd(row['monthly_budget'])}, relay hosts "
               f"{', '.join(relay.hosts_of(row)) or '-'}")
    click.echo("Shown this once (only its SHA-256 is kept); send it as Runware's API key:")
    click.echo(secret)


@keys_group.command("list")
def list_command():
    """Every key: id, label, budgets, what its tasks cost, whether it is revoked, and
    the hosts its tasks' results may be relayed to."""
    found = keys.list_keys(create_app().extensions["catalogue"].conn)
    if not found:
        click.echo("no keys yet: runware-archive keys create --label NAME")
        return
    click.echo(f"{'id':>4}  {'label':<24} {'daily':>10} {'monthly':>10} {'spend':>10} "
               f"{'tasks':>6}  {'revoked':<27}  relay hosts")
    for key in found:
        click.echo(f"{key['id']:>4}  {key['label'][:24]:<24} {_usd(key['daily_budget']):>10} "
                   f"{_usd(key['monthly_budget']):>10} {_usd(key['spend']):>10} "
                   f"{key['tasks']:>6}  {key['revoked_at'] or '-':<27}  "
                   f"{' '.join(relay.hosts_of(key)) or '-'}")


@keys_group.command("revoke")
@click.argument("key_id", type=int)
def revoke_command(key_id):
    """Refuse the key from now on (its tasks keep their label and spend)."""
    if not keys.revoke(create_app().extensions["catalogue"], key_id):
        raise click.ClickException(f"no live key {key_id} (unknown, or revoked already)")
    click.echo(f"key {key_id} revoked")
