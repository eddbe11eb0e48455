"""The ``runware-archive`` command: ``serve``, ``submit`` and friends."""

import json
import os
import re
import signal
import sys
import threading
import time

import click
from werkzeug.serving import WSGIRequestHandler, make_server

from archive import states
from receiver import config as settings
from receiver import create_app, hosts, replica
from receiver.worker import start_fetcher
from receiver.hosts import allowed_names
from protocol.schemas import ParameterError, load_submission
from receiver.provider.submit import submit_in_app
from sandbox import app as sandbox_app

TOKEN_PATTERN = re.compile(r"(token=)[^&\s\"']*")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def redact(text):
    """``text`` with every ``token=`` value replaced: tokens never reach a log."""
    return TOKEN_PATTERN.sub(r"\1[redacted]", text)


class RedactingRequestHandler(WSGIRequestHandler):
    """Werkzeug's request handler with the token taken out of every log line."""

    def log(self, type, message, *args):
        """Format, redact, then log (covers access lines and malformed request lines)."""
        super().log(type, "%s", redact(message % args if args else message))


@click.group()
def main():
    """runware-archive: submit Runware imageInference tasks, archive every result."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (0.0.0.0 for every interface).")
@click.option("--port", default=settings.DEFAULT_PORT, show_default=True, type=int,
              help="Port to listen on (0 picks a free one).")
@click.option("--workers", default=0, show_default=True, type=int,
              help="0: one process, threaded server. N: N gunicorn workers (gevent) "
                   "and the image fetcher as its own process.")
def serve(host, port, workers):
    """Run the service: a threaded server, or gunicorn with --workers N."""
    if workers:
        if port == 0:
            raise click.BadParameter("pick a port for --workers", param_hint="--port")
        # Before prometheus_client is imported: the workers share their metrics there.
        from receiver.production import prometheus_dir
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = prometheus_dir(settings.data_dir())
    app = create_app()
    server = None if workers else make_server(
        host, port, app, threaded=True, request_handler=RedactingRequestHandler)
    shown = host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"
    bound = server.server_port if server else port
    url = f"http://{'[' + shown + ']' if ':' in shown else shown}:{bound}"
    settings.record_server_address(app.config, url)
    if not workers and start_fetcher(app) is None:
        click.echo("image archive: RUNWARE_ARCHIVE_FETCHER=off; run `runware-archive worker`")
    provider = app.config["PROVIDER"]
    click.echo(f"runware-archive is serving at {url}/  (data: {app.config['RUNWARE_ARCHIVE_DIR']})")
    if provider == "sandbox":
        click.echo("provider: the built-in SANDBOX (no RUNWARE_API_KEY set): images are "
                   "local stand-ins, nothing is charged")
    elif settings.public_url(app.config):
        click.echo(f"provider: Runware; webhooks go to {settings.public_url(app.config)}")
    else:
        click.echo("provider: Runware")
        click.echo("WARNING: RUNWARE_ARCHIVE_PUBLIC_URL is not set, and Runware cannot reach "
                   "an address on this machine: every task submitted is refused (503, "
                   "publicURLRequired) until it is set to the URL at which Runware reaches "
                   "this service.", err=True)
    for warning in (exposure_warning(host, app.config), host_names_note(host, app.config)):
        if warning:
            click.echo(warning, err=True)
    click.echo('try:  runware-archive submit --prompt "a lighthouse at dawn"')
    if workers:
        from receiver.production import serve_with_gunicorn
        serve_with_gunicorn(app, f"{host}:{port}", workers)
        return
    litestream = replica.start(app.config)
    if litestream is not None:
        click.echo(f"catalogue replicated to {app.config['RUNWARE_ARCHIVE_REPLICA']} (Litestream)")
    run_until_stopped(server, lambda: replica.stop(litestream, app.config))


def run_until_stopped(server, on_stop=lambda: None):
    """Serve until Ctrl-C or SIGTERM, then ``on_stop``: SIGTERM ends the server loop like
    Ctrl-C does, so what runs beside the server (Litestream) is stopped, and syncs, after it."""
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        on_stop()


def exposure_warning(host, config):
    """What ``serve`` says when it listens beyond loopback, or None on loopback."""
    if host in LOOPBACK_HOSTS:
        return None
    if not config.get("RUNWARE_ARCHIVE_UI_PASSWORD"):
        return (f"WARNING: listening on {host}, reachable from other machines, and "
                "RUNWARE_ARCHIVE_UI_PASSWORD is not set: anyone who can reach this address "
                "can browse the archive and submit tasks that spend money on your Runware "
                "account. Set RUNWARE_ARCHIVE_UI_PASSWORD, or serve on 127.0.0.1.")
    return (f"warning: listening on {host}, reachable from other machines; pages and the "
            "API need RUNWARE_ARCHIVE_UI_PASSWORD. Put HTTPS in front: the password and "
            "the session cookie cross the network.")


def host_names_note(host, config):
    """Which Host names are answered (receiver/hosts.py), when serving beyond loopback."""
    if host in LOOPBACK_HOSTS:
        return None
    names = allowed_names(config)
    if names is None:
        return ("warning: RUNWARE_ARCHIVE_ALLOWED_HOSTS=*: any Host name is answered, so a "
                "web page on a DNS-rebinding domain can reach this service")
    listed = ", ".join(sorted(names))
    if host in ("0.0.0.0", "::", ""):
        return (f"note: listening on every interface, but answering only the host names "
                f"{listed}: which addresses of this machine clients use is not known; add "
                "them, and every name the service is reached by, to "
                "RUNWARE_ARCHIVE_ALLOWED_HOSTS (or RUNWARE_ARCHIVE_PUBLIC_URL)")
    return (f"note: answering only the host names {listed}; add others to "
            "RUNWARE_ARCHIVE_ALLOWED_HOSTS")


PARAM_OPTIONS = [
    ("prompt", "positivePrompt", str), ("negative_prompt", "negativePrompt", str),
    ("seed", "seed", int), ("width", "width", int), ("height", "height", int),
    ("steps", "steps", int), ("cfg_scale", "CFGScale", float),
    ("scheduler", "scheduler", str), ("number_results", "numberResults", int),
    ("output_type", "outputType", str), ("output_format", "outputFormat", str),
    ("output_quality", "outputQuality", int), ("delivery_method", "deliveryMethod", str),
    ("label", "label", str),
]


@main.command()
@click.option("--prompt", help="positivePrompt (2–3000 characters).")
@click.option("--negative-prompt", help="negativePrompt.")
@click.option("--seed", type=int, help="Seed (0 … 2^63−1); random when left out.")
@click.option("--width", type=int, help="Width, a multiple of 16 (default 1024).")
@click.option("--height", type=int, help="Height, a multiple of 16 (default 1024).")
@click.option("--steps", type=int, help="Steps, 1–50.")
@click.option("--cfg-scale", type=float, help="CFGScale, 0–50.")
@click.option("--scheduler", help="One of the model's 75 schedulers.")
@click.option("--number-results", type=int, help="Images to make, 1–20.")
@click.option("--output-type", help="URL, base64Data or dataURI.")
@click.option("--output-format", help="JPG, PNG or WEBP.")
@click.option("--output-quality", type=int, help="20–99.")
@click.option("--delivery-method", type=click.Choice(["async", "sync"]),
              help="async (the default with our webhook) or sync: Runware answers with "
                   "the images, the webhook still attached.")
@click.option("--label", help="A project or client name to group costs by (not sent).")
@click.option("--json", "json_file", type=click.File(), help="A JSON file with the task "
              "(Runware's field names); the options above override its fields.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for the results to arrive and list them.")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait.")
def submit(json_file, wait, timeout, **options):
    """Submit one imageInference task and print its taskUUID."""
    params = json.load(json_file) if json_file else {}
    if not isinstance(params, dict):
        raise click.ClickException("the --json file must hold one JSON object")
    for option, field, _ in PARAM_OPTIONS:
        if options.get(option) is not None:
            params[field] = options[option]
    app = create_app()
    try:
        params = load_submission(params)
    except ParameterError as exc:
        for error in exc.errors:
            click.echo(f"error: {error['parameter'] or 'task'}: {error['message']}", err=True)
        sys.exit(2)
    outcome = submit_in_app(app, params)
    if outcome.status != "refused":  # a task refused by the budget was never recorded
        click.echo(f"taskUUID: {outcome.task_uuid}")
    if outcome.errors:
        for error in outcome.errors:
            click.echo(f"error: {error.get('code', '')}: {error.get('message', '')}", err=True)
        if outcome.errors[0].get("code") == "providerUnreachable":
            click.echo("is the service running?  start it with: runware-archive serve", err=True)
        sys.exit(1)
    click.echo(f"status: {outcome.status}")
    if wait:
        wait_for(app, outcome.task_uuid, timeout)


def wait_for(app, task_uuid, timeout):
    """Poll the catalogue until the task is complete or failed, then list its results."""
    catalogue = app.extensions["catalogue"]
    deadline = time.monotonic() + timeout
    task = catalogue.get_task(task_uuid)
    while task["status"] not in states.FINAL and time.monotonic() < deadline:
        time.sleep(0.2)
        task = catalogue.get_task(task_uuid)
    for result in task["results"]:
        cost = "no cost" if result["cost"] is None else f"${result['cost']:.4f}"
        click.echo(f"  image {result['image_uuid']}  seed {result['seed']}  {cost}")
    click.echo(f"status: {task['status']}  ({task['results_received']} of "
               f"{task['number_results']} results)")
    if task["status"] == states.ERROR:
        click.echo(f"error: {task['error_code']}: {task['error_message']}", err=True)
        sys.exit(1)
    if task["status"] != states.COMPLETE:
        click.echo(f"still waiting after {timeout:g}s; see GET /api/tasks/{task_uuid}")


@main.command("sandbox")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=sandbox_app.DEFAULT_PORT, show_default=True, type=int,
              help="Port to listen on (0 picks a free one).")
@click.option("--data-dir", envvar="RUNWARE_SANDBOX_DIR", type=click.Path(file_okay=False),
              help="Folder for sandbox.db, the hosted images and the key [env "
                   "RUNWARE_SANDBOX_DIR; default: the data folder].")
@click.option("--callback-base", "callback_bases", multiple=True, metavar="URL",
              help="A URL prefix the sandbox may POST webhooks and PUT uploads to, e.g. "
                   "http://127.0.0.1:5000/ (repeatable) [env RUNWARE_SANDBOX_CALLBACKS].")
def sandbox_command(host, port, data_dir, callback_bases):
    """Run the sandbox provider alone: a local Runware REST endpoint with its own key."""
    folder = os.path.abspath(data_dir or settings.data_dir())
    app = sandbox_app.standalone_app(folder)
    if callback_bases:
        app.config["RUNWARE_SANDBOX_CALLBACKS"] = ",".join(callback_bases)
    app.wsgi_app = hosts.wrap(app, app.wsgi_app)  # the archive's Host check (DNS rebinding)
    server = make_server(host, port, app, threaded=True,
                         request_handler=RedactingRequestHandler)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{server.server_port}"
    path = settings.SANDBOX_PATH
    click.echo(f"Runware sandbox at {url}{path}  (state and key: {folder})")
    click.echo(f"use it with: RUNWARE_API_URL={url}{path} RUNWARE_SANDBOX_DIR={folder} "
               "runware-archive serve --port <another port>")
    if not app.config["RUNWARE_SANDBOX_CALLBACKS"]:
        click.echo("it calls back nothing until --callback-base names where webhooks go",
                   err=True)
    run_until_stopped(server)


from receiver.stats import stats as stats_command  # noqa: E402
from receiver.cli_books import books_command  # noqa: E402
from receiver.cli_archive import (  # noqa: E402  (the image archive's commands)
    export_command, import_command, reconcile_command, restore_command, worker)
from receiver.cli_keys import keys_group  # noqa: E402  (the client keys of POST /v1)
from receiver.cli_budget import budget_group  # noqa: E402  (the budgets every process obeys)

main.add_command(worker)
main.add_command(reconcile_command)
main.add_command(export_command)
main.add_command(import_command)
main.add_command(restore_command)
main.add_command(stats_command)
main.add_command(books_command)
main.add_command(keys_group)
main.add_command(budget_group)


if __name__ == "__main__":  # ``python -m receiver.cli``: how serve --workers starts the fetcher
    main()
