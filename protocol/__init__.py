"""Runware's protocol, as the archive and the sandbox both speak it: the ``imageInference``
parameters and their rules (:mod:`protocol.schemas`), and every shape of what comes back
(:mod:`protocol.deliveries`). Pure: marshmallow and the standard library only, so every
room can stand on it."""
