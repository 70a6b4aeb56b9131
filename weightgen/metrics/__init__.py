"""weightgen.metrics"""
