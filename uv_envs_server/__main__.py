"""``python -m uv_envs_server``: the same as the ``uv-envs-server`` command."""

import sys

from ._cli import main

sys.exit(main())
