"""weightgen.data"""
