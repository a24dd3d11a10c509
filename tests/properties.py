"""Property tests' example counts, relative to the Hypothesis profile of the run.

The profiles are registered in tests/conftest.py: `ci` (the default) is derandomized, so
every run tries the same examples and CI never passes or fails by luck; `long`
(HYPOTHESIS_PROFILE=long) tries `LONG_FACTOR` times as many random ones, on demand.
"""

from __future__ import annotations

import os

from hypothesis import settings

# Examples per property in the default profile, unless a test states its own count.
CI_EXAMPLES = 25
LONG_FACTOR = 20
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")


def examples(ci: int) -> int:
    """A property's example count: `ci` in the default profile, scaled like the profile's own
    count in the others (a costly property states a smaller `ci`, a cheap one a larger)."""
    return max(1, ci * settings.default.max_examples // CI_EXAMPLES)
