"""weightgen.gan"""
