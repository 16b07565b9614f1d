"""Stage 4: audits of a candidate and its baselines for toxicity and hallucination."""
