"""Builds as both the registry and the builder see them: the lifecycle (statuses, results,
events) and the error codes a build ends with."""
