"""The audit trail: the ``AuditLog`` port (``log``), its stores (``sqlite``, ``postgres``).

``counted`` wraps a store to count the operations it records (``EnvManager.stats``).
May touch: ``_store`` (where the SQLite file lives), ``_events`` (the tallies) and the
vocabulary. Knows nothing of envs beyond their keys; ``_core`` writes through it.
"""
