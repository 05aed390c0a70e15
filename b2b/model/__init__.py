"""Layer 4, model: the generator and the critic, their presets and their files (chapters 4 and 5).

- :mod:`b2b.model.attention`: the SAGAN self-attention block;
- :mod:`b2b.model.streams`: the critic's onset/offset and chroma views (BinaryMuseGAN);
- :mod:`b2b.model.refiner`: the generator's optional last stage along time;
- :mod:`b2b.model.fast`: faster twins of the edge layers (``speed_up``), same parameters;
- :mod:`b2b.model.presets`: the hyper-parameters of the networks and of training, by name
  (``PRESETS``, ``get_preset``);
- :mod:`b2b.model.networks`: ``GenConvNet``, ``DiscConvNet``, ``build(preset)``;
- :mod:`b2b.model.checkpoint`: the files a model lives in (training checkpoints, generator
  files), loaded safely (``load_checkpoint``, ``load_generator``).
"""

from b2b.model.attention import SelfAttention
from b2b.model.checkpoint import latest_checkpoint, load_checkpoint, load_generator
from b2b.model.fast import speed_up
from b2b.model.networks import DiscConvNet, GenConvNet, build, count_parameters
from b2b.model.presets import PRESETS, CriticConfig, GeneratorConfig, Preset, TrainingConfig, get_preset

__all__ = ["GenConvNet", "DiscConvNet", "GeneratorConfig", "CriticConfig", "TrainingConfig", "Preset", "PRESETS",
           "build", "get_preset", "count_parameters", "SelfAttention", "speed_up", "load_checkpoint",
           "load_generator", "latest_checkpoint"]
