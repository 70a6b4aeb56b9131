"""weightgen.weights"""
