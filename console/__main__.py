"""``python -m console``: the same as the `baton` command."""

import sys

from console.cli import main

sys.exit(main())
