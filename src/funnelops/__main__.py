"""`python -m funnelops` is the same as the `funnelops` command."""

import sys

from funnelops.cli.main import main

sys.exit(main())
