"""PostgreSQL: the pool and schema, the read model's rows, paging, results by reference,
API tokens, the event feed, costs and feedback. Used by activities and interfaces alike."""
