"""The sandbox provider: a stand-in for Runware that speaks its REST protocol, a program of
its own. The archive mounts it when no ``RUNWARE_API_KEY`` is set
(:func:`sandbox.app.init_app`); ``runware-archive sandbox`` runs it alone
(:func:`sandbox.app.standalone_app`).

It depends only on what Runware's protocol is (:mod:`protocol`), on prices
(:mod:`archive.pricing`) and on SQLite helpers (:mod:`archive.sqlite`), never on the web
app that mounts it: what it must know of its host (where that host's webhooks are) is
handed to it at mount time.
"""
