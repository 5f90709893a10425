"""`python -m chaos`: run a chaos profile and check it (see chaos.runner)."""

import sys

from chaos.runner import main

sys.exit(main())
