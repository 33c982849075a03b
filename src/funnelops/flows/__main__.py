"""`python -m funnelops.flows ...`: see funnelops.flows.cli."""

from funnelops.flows.cli import main

raise SystemExit(main())
