"""Redis, the one service ttrpg needs.

* :mod:`ttrpg.backend.connection`: the client for the configured URL (or the embedded server),
  module checks, password masking, and small helpers for bytes and waiting out a restart.
* :mod:`ttrpg.backend.embedded`: the embedded Redis 8 server with its modules, private to the user.
"""
