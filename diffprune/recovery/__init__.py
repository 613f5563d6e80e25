"""Getting quality back after a cut: distillation from the original (one GPU or many, through accelerate),
its checkpoints, and adapting LoRAs trained on the original to the cut.

May import: the package root's shared modules, families/, structure/ and models/.
"""
