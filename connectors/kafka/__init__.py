"""faasbus.connectors.kafka (issue 7)."""
