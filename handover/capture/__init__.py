"""Capture a live cluster read-only into a bundle, and replay a bundle into the rehearsal."""
