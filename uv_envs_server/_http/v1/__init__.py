"""The ``/v1`` API: its routes, its JSON models and request bodies."""
