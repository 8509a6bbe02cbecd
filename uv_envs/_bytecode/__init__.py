"""Compiling a store entry's bytecode in the background, and its worker.

May touch: ``_store`` and the vocabulary.
"""
