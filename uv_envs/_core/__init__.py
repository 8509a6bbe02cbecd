"""The service layer: every operation on an env, one module per use case.

May touch: the adapters (``_audit``, ``_store``, ``_locks``, ``_procs``, ``_bytecode``,
``_relay``, ``_uv``) and the vocabulary. Wired by ``_bootstrap``; reached
only through ``EnvManager``. Code that needs an env's lock takes the ``Locked`` token of
``access``.
"""
