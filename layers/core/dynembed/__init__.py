"""dynembed: keep vector-search embeddings true to data that keeps changing."""
