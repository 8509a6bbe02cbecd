from uv_envs._cli import main
import sys

sys.exit(main())
