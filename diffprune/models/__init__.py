"""Pipelines in and out: loading (hub ids, folders, bundled names), saving cuts (saved_cuts.py), the one writer
of saved pruned folders with their report and model card (saved_folder.py), the bundled zoo, generation with a
pipeline's own sampler, task adapters (calibration data and the denoising loss per family), the training noise
of a scheduler, prompts and user images.

May import: the package root's shared modules, families/ and structure/.
"""
