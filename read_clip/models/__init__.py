"""CLIP, the frozen text decoder and the bridge between them."""
