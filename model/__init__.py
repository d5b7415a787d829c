"""trackrad-xmem: XMem-based tumour tracking for TrackRAD2025 cine-MRI."""
