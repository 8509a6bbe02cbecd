"""``python -m uv_envs``: the CLI."""

import sys

from uv_envs._cli.main import main

sys.exit(main())
