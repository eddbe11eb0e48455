"""Storage for runware-archive: the catalogue, the image store, the fetcher, costs.

Nothing here imports Flask or ``receiver``: the web layer depends on this, never the reverse.
"""
