"""Talking to uv and Python: command builders, the one executor, interpreters, the Ray link.

May touch: ``_events`` (to report uv's progress and count its runs) and the vocabulary.
The only package that starts subprocesses for uv.
"""
