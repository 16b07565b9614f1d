"""Stage 4: audits of a candidate and its baselines, each a registered composition (``audits.registry``).

Importing the package registers the shipped audits; they run in this import order.
"""

from audits.toxicity import audit as _toxicity  # noqa: F401  (registers "toxicity")

# isort: split
from audits.hallucination import audit as _hallucination  # noqa: F401  (registers "hallucination")

# isort: split
from audits.bias import audit as _bias  # noqa: F401  (registers "bias")

# isort: split
from audits.memorization import audit as _memorization  # noqa: F401  (registers "memorization")
