"""The ``uv-envs`` command line: ``main`` parses, ``commands`` holds one handler per subcommand.

May touch: ``EnvManager``, the audit stores (for ``audit copy``) and the vocabulary; never the
services of ``_core`` directly.
"""
