"""``python -m talkinghead.cli``."""

import sys

from . import main

sys.exit(main())
