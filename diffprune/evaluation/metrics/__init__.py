"""Quality metrics, each a thin layer over a well-kept implementation (torchmetrics, transformers).

fid: Frechet distance in InceptionV3 or a domain feature network; clip_score: text-image agreement;
clap_score: its text-audio counterpart.
"""
