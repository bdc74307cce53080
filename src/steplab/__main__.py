"""``python -m steplab …`` is the ``steplab`` command."""

import sys

from steplab.cli import main

sys.exit(main())
