"""weightgen.utils"""
