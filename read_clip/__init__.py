"""READ-CLIP: CLIP fine-tuning with reconstruction and alignment of text descriptions."""

__version__ = "0.1.0"
