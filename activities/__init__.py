"""Activities: every write to PostgreSQL, each idempotent so a retry never duplicates a row."""
