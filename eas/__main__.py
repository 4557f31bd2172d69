"""``python -m eas``: the ``eas`` command."""

import sys

from eas.cli import main

sys.exit(main())
