"""How a goal runs its tasks (`TaskRunner`): a bounded window of task workflows, or, for a
large goal, partitions that each run a window."""
