"""`python -m fsvae_study ...` is `fsvae-study ...`."""

import sys

from fsvae_study.cli import main

sys.exit(main())
