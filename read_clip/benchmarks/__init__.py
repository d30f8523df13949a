"""Zero-shot compositional benchmarks: loaders, per-item scoring, aggregation and their commands.

Importing this package (and `loaders`, `images`, `scoring`, `aggregate`) does not import torch,
so the workflow can call `image_sets_for` while it parses the Snakefile.
"""

from read_clip.benchmarks.items import BenchmarkData, BenchmarkFormatError, ImageRef, Item
from read_clip.benchmarks.loaders import BENCHMARKS, image_sets_for, load_benchmark

__all__ = ["BENCHMARKS", "BenchmarkData", "BenchmarkFormatError", "ImageRef", "Item",
           "image_sets_for", "load_benchmark"]
