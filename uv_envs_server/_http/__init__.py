"""The HTTP front door: the FastAPI app under ``/v1``, the status page, its client and provider.

May touch: the public ``uv_envs`` API and what both front doors share (``_outcomes``,
``_security``, ``_limits``, ``_request_ids``); never ``_grpc``.
"""
