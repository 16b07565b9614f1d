"""The release gate: policy, evidence, decision, overrides and the registry (``nift-gate gate``).

Entry points: ``harness.gate.gate.decide(gate_config, store, candidate, baselines, catalogue)`` and
``harness.gate.gate.override(...)``; ``harness.gate.registry.Registry`` for the decision log. Other parts
read decisions, overrides and the evidence a decision rests on through ``harness.gate.record``.
"""
