"""Events: the domain events, their stream, operation tracking and uv's progress.

May touch: the vocabulary only.
"""
