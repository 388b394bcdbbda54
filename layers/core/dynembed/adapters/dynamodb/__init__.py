"""DynamoDB adapters, one module per port: the ledger, the generation registry (and its backfill
progress), the embedding cache and held jobs (pynamodb models), and the source table reader
(boto3: its key schema is the operator's)."""
