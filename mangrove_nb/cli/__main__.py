"""``python -m mangrove_nb.cli``: the ``mangrove-nb`` command without its console script."""

import sys

from . import main

sys.exit(main())
