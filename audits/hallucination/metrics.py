"""Hallucination audit metrics (filled in below)."""
