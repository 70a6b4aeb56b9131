"""weightgen.diffusion"""
