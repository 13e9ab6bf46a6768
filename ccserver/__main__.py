"""`python -m ccserver` is the `ccserver` command (the stack starts the controller so)."""

import sys

from ccserver.cli import main

sys.exit(main())
