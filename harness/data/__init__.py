"""Stage 1: build NIFT pairs from a corpus (cut, teacher continuation, filters, contamination check)."""
