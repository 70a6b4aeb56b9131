"""weightgen.finetune"""
