"""gunicorn settings for runware-archive: ``gunicorn -c gunicorn.conf.py 'receiver:create_app()'``.

Threads, because the sandbox provider is served by the same app it answers (a submission
POSTs to ``/sandbox/v1`` on this very server) and webhooks are I/O-bound.
"""

import os

bind = os.environ.get("RUNWARE_ARCHIVE_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("RUNWARE_ARCHIVE_WORKERS", "2"))
worker_class = os.environ.get("RUNWARE_ARCHIVE_WORKER_CLASS", "gevent")
threads = int(os.environ.get("RUNWARE_ARCHIVE_THREADS", "8"))
worker_connections = 1000
timeout = 60
# %(U)s is the path without its query string: the webhook token never reaches the log.
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'
