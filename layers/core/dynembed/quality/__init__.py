"""Quality reports people can look at: rebuild and canary reports as self-contained HTML."""
