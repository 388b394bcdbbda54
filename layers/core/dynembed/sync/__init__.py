"""Flow 1, incremental sync: classify stream records, apply access and deletes at once, reconcile content."""
