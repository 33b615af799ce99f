"""faasbus.connectors.sdk"""
