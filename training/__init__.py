"""Training and fine-tuning of XMem for TrackRAD (`python -m training`, docs/training.md)."""
