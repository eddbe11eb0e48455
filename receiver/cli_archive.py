"""The archive's commands: ``worker``, ``reconcile``, ``export``, ``import`` and ``restore``
(registered on ``runware-archive`` by :mod:`receiver.cli`)."""

import json
import os
import signal
import threading
from dataclasses import asdict

import click

from archive.exchange import ExchangeError, export, import_archive
from receiver import create_app
from receiver.storage import get_store
from receiver.worker import make_fetcher


@click.command("worker")
@click.option("--once", is_flag=True, help="Fetch what is due now, reconcile once, and exit.")
@click.option("--nice", default=10, show_default=True, type=click.IntRange(0, 19),
              help="Lower this process's CPU priority, so hashing and thumbnails yield to "
                   "the web workers acknowledging webhooks.")
def worker(once, nice):
    """Fetch pending images into the archive (and reconcile periodically) until stopped."""
    if nice:
        os.nice(nice)  # before any thread starts: on Linux, threads inherit it
    app = create_app()
    fetcher = make_fetcher(app)
    if once:
        from receiver.provider.reconcile import reconcile

        fetched = fetcher.drain()
        report = reconcile(app)
        click.echo(f"fetched {fetched} images; asked the provider for {len(report.asked)} "
                   f"tasks, {report.new_results} new results")
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(f"archive worker: {fetcher.concurrency} threads, data in "
               f"{app.config['RUNWARE_ARCHIVE_DIR']}")
    try:
        fetcher.run(stop)
    except KeyboardInterrupt:
        stop.set()
    click.echo("stopped")


@click.command("reconcile")
@click.option("--after", type=float, help="Ask for tasks incomplete this many seconds after "
              "creation [default: RUNWARE_ARCHIVE_RECONCILE_AFTER].")
@click.option("--retry-failed", is_flag=True,
              help="Put failed and refused downloads back in the queue first.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def reconcile_command(after, retry_failed, as_json):
    """Ask the provider (getResponse, then getTaskDetails) for missing results; report what
    is not archived."""
    from receiver.provider.reconcile import reconcile

    report = reconcile(create_app(), after=after, retry=retry_failed)
    if as_json:
        click.echo(json.dumps(asdict(report), indent=2))
        return
    if retry_failed:
        click.echo(f"queued {report.retried} failed downloads again")
    click.echo(f"asked the provider for {len(report.asked)} tasks: {report.new_results} new "
               f"results, {report.new_errors} errors, {report.processing} still processing, "
               f"{len(report.not_found)} unknown to it (asked again later)")
    for task_uuid in report.recovered:
        click.echo(f"recovered: task {task_uuid}: its results came through getTaskDetails")
    for task_uuid in report.lost:
        click.echo(f"lost: task {task_uuid}: results still missing when the reconcile window "
                   "closed; no longer counted in flight")
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    for task in report.missing:
        click.echo(f"missing: task {task['task_uuid']} has {task['results_received']} of "
                   f"{task['number_results']} results ({task['status']}, asked "
                   f"{task['reconcile_count']} times)")
    for image in report.images:
        click.echo(f"not archived: image {image['image_uuid']} ({image['archive_state']}): "
                   f"{image['reason']}")
    for upload in report.unmatched_uploads:
        click.echo(f"unmatched upload: {upload['sha256']}.{upload['file_ext']} for task "
                   f"{upload['task_uuid']} (received {upload['received_at']})")


@click.command("export")
@click.option("--out", required=True, type=click.Path(dir_okay=False, writable=True),
              help="The zip file to write.")
@click.option("--since", type=click.DateTime(["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]),
              help="Only tasks created on or after this date (YYYY-MM-DD, UTC).")
@click.option("--query", help="Only tasks whose prompts contain every word of this text.")
def export_command(out, since, query):
    """Write images and a JSON-lines manifest of every parameter to a zip."""
    app = create_app()
    try:
        summary = export(app.extensions["catalogue"], get_store(app), out, query=query,
                         since=since.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if since else None)
    except ExchangeError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"exported {summary.tasks} tasks, {summary.results} results, "
               f"{summary.files} files to {out}")


@click.command("import")
@click.argument("zip_file", type=click.Path(exists=True, dir_okay=False))
def import_command(zip_file):
    """Restore an export (idempotent; every file's sha256 is verified)."""
    app = create_app()
    try:
        summary = import_archive(app.extensions["catalogue"], get_store(app), zip_file)
    except ExchangeError as exc:
        raise click.ClickException(str(exc))
    click.echo(f"imported {summary.tasks} new tasks, {summary.results} new results, "
               f"{summary.files} new files; {summary.updated} results completed")


@click.command("restore")
@click.option("--force", is_flag=True, help="Replace a catalogue already in the data folder.")
def restore_command(force):
    """Rebuild the data folder's catalogue from RUNWARE_ARCHIVE_REPLICA (Litestream)."""
    from receiver import replica

    config = replica.load_settings()
    try:
        check = replica.restore(config, force=force)
    except replica.RestoreError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"restored {replica.catalogue_path(config)} from "
               f"{config['RUNWARE_ARCHIVE_REPLICA']}: integrity_check {check}")
