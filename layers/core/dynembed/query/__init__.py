"""Flow 3, query: search the serving generation with the access filter inside the query."""
