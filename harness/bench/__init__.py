"""Stage 3: benchmark a candidate against its baselines with lm-eval, and compare with paired statistics."""
