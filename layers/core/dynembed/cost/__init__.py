"""What things cost: the dated price table, token counting, the rebuild estimate, DynamoDB
capacity rules, embedding-quota sizing and the monthly cost model."""
