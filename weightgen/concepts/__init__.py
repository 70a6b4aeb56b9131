"""weightgen.concepts"""
