"""The audit trail: the ``AuditLog`` port (``log``) and its stores (``sqlite``, ``postgres``).

May touch: ``_store`` (where the SQLite file lives) and the vocabulary. Knows nothing of
envs beyond their keys; ``_core`` writes through it.
"""
