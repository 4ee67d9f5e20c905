"""Lineage of models: OpenLineage datasets and facets for every stage, and the chain behind a model version."""
