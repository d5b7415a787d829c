"""Generators of labelled cine-MRI-like sequences, written in the TrackRAD dataset layout.

`sequences.synthetic`: the torso phantom (breathing motion, translation cases, the sequences
made to defeat the flow; `python -m sequences.synthetic`). `sequences.real_texture`: sequences
built on real MR slices shipped inside PyPI wheels (`python -m sequences.real_texture`).
Training, evaluation and the tests all use them; the package imports neither `training` nor
`evaluation` (test/test_import_graph.py).
"""
