"""HTTP API of the aggregation service: blueprints and their shared pieces."""
