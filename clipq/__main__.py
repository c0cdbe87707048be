"""``python -m clipq``: the command line, as the ``clipq`` console script."""

import sys

from clipq.cli import main

sys.exit(main())
