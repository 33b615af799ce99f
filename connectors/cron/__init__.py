"""faasbus.connectors.cron"""
