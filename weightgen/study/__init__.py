"""Ablation and scaling studies: Hydra multiruns over the real configs, gathered into tables."""
