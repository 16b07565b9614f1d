"""Stage 4: audits of a candidate and its baselines, each a registered composition (``audits.registry``).

Importing the package registers the shipped audits; they run in this import order.
"""

from audits.toxicity import audit as _toxicity  # noqa: F401  (registers "toxicity")

# isort: split
from audits.hallucination import audit as _hallucination  # noqa: F401  (registers "hallucination")
