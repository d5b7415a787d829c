"""Real-texture training and validation data: real slices shipped inside PyPI wheels
(sources.py: catalogue, loader, train/val split), their targets (targets.py), cine-like
labelled sequences (cine.py, dataset.py; `python -m training.real_texture`) and static-stage
clips (static.py). docs/real-texture.md describes the sources, the split and the settings."""
