"""Bias audit: BBQ (Parrish et al. 2022) through lm-eval's own BBQ task; accuracy and bias scores per category."""
