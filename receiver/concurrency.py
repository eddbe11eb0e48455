"""What the storage layer must not know: whether this process runs under gevent.

The catalogue's committer flushes the WAL and checkpoints with calls that block in C. Under
gevent's patched threading its threads are greenlets, so such a call would stop the event
loop, and every request of the worker with it; there it goes to gevent's pool of native
threads instead. The catalogue is handed :func:`off_loop` by ``create_app``.
"""


def off_loop(function, *args):
    """Run ``function(*args)`` where it cannot block the event loop, and return its result."""
    try:
        from gevent import get_hub, monkey
    except ImportError:
        return function(*args)
    if not monkey.is_module_patched("threading"):
        return function(*args)
    return get_hub().threadpool.apply(function, args)
