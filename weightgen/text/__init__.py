"""weightgen.text"""
