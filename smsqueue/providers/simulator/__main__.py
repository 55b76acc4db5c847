"""`python -m smsqueue.providers.simulator`: the same as `smsqueue simulator`."""

import sys

from smsqueue.providers.simulator.cli import main

sys.exit(main())
