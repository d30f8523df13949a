"""Training of the base CLIP, the demo decoder and the fine-tuned variants."""
