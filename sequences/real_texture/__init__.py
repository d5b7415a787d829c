"""Real-texture training and validation data: real slices shipped inside PyPI wheels
(sources.py: catalogue, loader, train/val split), their targets (targets.py), cine-like
labelled sequences (cine.py, dataset.py; `python -m sequences.real_texture`). The static-stage
clips made from the same slices are training's (training/real_static.py). docs/real-texture.md
describes the sources, the split and the settings."""
