"""faasbus.connectors.nats"""
