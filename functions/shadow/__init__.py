"""Lambda function package (handler: handler.handler)."""
