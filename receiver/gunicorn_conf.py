"""gunicorn settings for runware-archive (``gunicorn -c python:receiver.gunicorn_conf``).

gevent workers, because every connection of a gthread worker holds a thread while its
request trickles in: 200 slow clients starved the webhook in tests/test_faults.py. Under
gevent a slow client costs a greenlet. The environment can override each setting.
"""

import os

bind = os.environ.get("RUNWARE_ARCHIVE_BIND", "127.0.0.1:5000")
workers = int(os.environ.get("RUNWARE_ARCHIVE_WORKERS", "2"))
worker_class = os.environ.get("RUNWARE_ARCHIVE_WORKER_CLASS", "gevent")
threads = int(os.environ.get("RUNWARE_ARCHIVE_THREADS", "8"))  # gthread only
worker_connections = 1000
timeout = 60
graceful_timeout = 20
# %(U)s is the path without its query string: the webhook token never reaches the log.
accesslog = os.environ.get("RUNWARE_ARCHIVE_ACCESS_LOG", "-") or None  # empty: no access log
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms'
