"""Multi-factor authentication: TOTP factors and recovery codes."""
