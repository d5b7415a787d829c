"""Training and fine-tuning of XMem for TrackRAD (`python -m model.train`, docs/training.md)."""
