"""Cross-process file locks: exclusive and shared holds, and waiting for them.

May touch: the vocabulary only.
"""
