"""Accounts: invitations, password reset and change, email change and verification."""
