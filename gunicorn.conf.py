"""gunicorn settings: ``gunicorn -c gunicorn.conf.py 'receiver:create_app()'``.

They live in :mod:`receiver.gunicorn_conf`, so ``runware-archive serve --workers N`` uses
the very same ones.
"""

from receiver.gunicorn_conf import *  # noqa: F401,F403
