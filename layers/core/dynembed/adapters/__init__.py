"""Adapters for AWS services (DynamoDB through pynamodb/boto3, SQS, CloudWatch)."""
