"""A plugin whose import calls sys.exit(0): it must be skipped, not end the command."""

import sys

sys.exit(0)
