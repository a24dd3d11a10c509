"""Tests of two-factor authentication (app/mfa/)."""
