"""Tests that drive the real GraphiQL page in headless Chromium (marker `browser`)."""
