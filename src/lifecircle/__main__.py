"""``python -m lifecircle``."""

import sys

from lifecircle.cli import main

sys.exit(main())
