"""Which processes use an env: the ``/proc`` scan and the liveness of envs.

May touch: ``_store`` and the vocabulary.
"""
