"""``python -m bot`` is ``streamhouse-bot``."""

import sys

from bot.cli import main

sys.exit(main())
