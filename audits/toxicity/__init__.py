"""Toxicity audit: scorers (detoxify, or a labelled offline fallback) and the HELM-style metrics."""
