"""The cine-MRI pipeline around XMem: frame normalisation (preprocess.py), crop window (crop.py),
dense flow (motion.py), arbitration between network and flow (arbitration.py), post-processing
(postprocess.py) and the mask helpers they share (masks.py). The tracker that joins them to the
inference core is model/trackers/xmem.py. See docs/pipeline.md."""
