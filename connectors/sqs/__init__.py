"""faasbus.connectors.sqs (issue 8)."""
