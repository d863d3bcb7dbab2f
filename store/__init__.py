"""PostgreSQL: the pool and schema, the read model's rows, results by reference, runbooks,
keys, deliverables, suggestions, API tokens, the event feed, costs and feedback."""
