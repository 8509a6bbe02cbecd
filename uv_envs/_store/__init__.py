"""Where envs live under the root: paths, records, projects, stores, leases.

May touch: ``_locks``, ``_uv`` and the vocabulary. Crash safety lives here: each module
owns the names and atomic steps of its files.
"""
