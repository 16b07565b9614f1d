"""Review app tests: the same hand-made run and reviewer config as the review stage's tests."""

from review_support import config, run_store  # noqa: F401  (fixtures)
