"""The executive report (`nift-gate report`): reads stored records only; no stage imports this package."""
