"""Layer 6, training: the music GAN's training run (chapter 6).

- :mod:`b2b.training.trainer`: the ``Trainer`` (data placement, schedule, checkpoints, history,
  DDP around :func:`b2b.gan.step.wgan_gp_iteration`);
- :mod:`b2b.training.command`: the ``b2b train`` command, which owns its output folder;
- :mod:`b2b.training.ema`: the moving average of the generator's weights;
- :mod:`b2b.training.history`: a run's record (history rows and files, sample snapshots);
- :mod:`b2b.training.cudagraph`: a step captured once as a CUDA graph and replayed;
- :mod:`b2b.training.runfolder`: a run's folder and machine (lock, leftovers, resume fallback,
  memory bound, threads).
"""

from b2b.training.ema import EMA
from b2b.training.trainer import Trainer, TrainerConfig

__all__ = ["Trainer", "TrainerConfig", "EMA"]
