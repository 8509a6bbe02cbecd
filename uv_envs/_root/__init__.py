"""The files under the root: paths, records, stores, locks and leases.

May touch: ``_uv`` (to find interpreters and stop orphaned uv processes) and the
vocabulary. Crash safety lives here: each module owns the names and atomic steps of
its files.
"""
