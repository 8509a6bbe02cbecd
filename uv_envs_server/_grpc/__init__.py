"""The gRPC front door: WTB's ``envmanager.EnvManagerService``, its client and provider.

May touch: the public ``uv_envs`` API and what both front doors share (``_outcomes``,
``_security``, ``_limits``, ``_request_ids``); never ``_http``.
"""
