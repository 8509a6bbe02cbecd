"""The wheel relay: relayed lock URLs, the relay server and its HTTP base.

May touch: the vocabulary only.
"""
