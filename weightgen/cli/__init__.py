"""weightgen.cli"""
