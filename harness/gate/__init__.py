"""The release gate: policy, evidence, decision, overrides and the registry (``nift-gate gate``).

Entry points: ``harness.gate.gate.decide(config, store)`` and ``harness.gate.gate.override(...)``;
``harness.gate.registry.Registry`` for the decision log.
"""
