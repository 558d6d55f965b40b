"""`python -m threadline.devtools.stack`."""

import sys

from .cli import main

sys.exit(main())
