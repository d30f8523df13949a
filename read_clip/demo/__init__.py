"""The demo's shapes world: a seeded generator of images, captions and benchmark items.

It writes the training data and every benchmark in its upstream on-disk layout, so the demo runs
through the same loaders as the real data. `read-clip make-demo-world` is the entry point
(`read_clip.demo.export`).
"""
