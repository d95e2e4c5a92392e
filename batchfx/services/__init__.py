"""Services over ``Storage``: jobs, partitioning, scoring, finalize, registry, schedules, drops."""
