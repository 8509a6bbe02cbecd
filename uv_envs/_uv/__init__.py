"""Talking to uv and Python: command builders, the one executor, interpreters, the Ray link.

May touch: the vocabulary only. The only package that starts subprocesses for uv.
"""
