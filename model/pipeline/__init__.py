"""The cine-MRI pipeline around XMem: crop window (crop.py), post-processing (postprocess.py)
and the XMemTracker that joins them to the inference core (tracker.py). See docs/pipeline.md."""
