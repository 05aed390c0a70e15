"""Layer 5, sampling: a trained generator in use (chapters 6 and 8).

- :mod:`b2b.sampling.generate`: sampling from a generator or a checkpoint (``b2b generate``);
- :mod:`b2b.sampling.export`: a generator file with its calibrated threshold (``b2b export``);
- :mod:`b2b.sampling.web`: the generator in a web page (ONNX export, portable seeds).

It needs a model and its file (:mod:`b2b.model`), not the Trainer; the Trainer draws its
sample grids with :func:`b2b.sampling.generate.generate`, so this layer sits below training.
"""

from b2b.sampling.export import export_generator
from b2b.sampling.generate import interpolate_latents, iter_generate

# (generate.generate is imported from its module: here the name is the module)
__all__ = ["iter_generate", "interpolate_latents", "export_generator"]
