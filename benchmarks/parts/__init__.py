"""The parts of ``run.py``: one module per ``--only`` part, the shared state, the report."""
