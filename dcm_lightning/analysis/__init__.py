"""Analyses behind DCM's design choices: how two trained networks differ by module kind
(params.py), and where a teacher's trajectories settle their semantics (boundary.py)."""
