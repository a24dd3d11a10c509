"""`python -m app.cli …` (the tests and benchmarks start the server this way)."""

import sys

from app.cli import main

sys.exit(main())
