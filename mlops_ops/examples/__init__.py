"""Example user code referenced by the example pipeline specs in ``dags/pipelines``."""
