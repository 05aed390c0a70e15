"""Layer 3, gan: the WGAN-GP algorithm, for any generator and critic (chapters 2, 3 and 6).

- :mod:`b2b.gan.losses`: the critic's and the generator's losses, the gradient penalty;
- :mod:`b2b.gan.step`: one WGAN-GP iteration (``wgan_gp_iteration``): n_critic critic updates,
  one generator update;
- :mod:`b2b.gan.toy`: 2-D toy data, small MLP GANs trained with the same step, mode coverage
  (import it as a module, ``from b2b.gan import toy``: it loads scipy).

Nothing here knows about music: the toy GANs of chapters 2 and 3 and the music Trainer
(:mod:`b2b.training`) run the same step.
"""

from b2b.gan.losses import critic_loss, critic_scores, generator_loss, gradient_penalty
from b2b.gan.step import STATS, wgan_gp_iteration

__all__ = ["critic_loss", "critic_scores", "generator_loss", "gradient_penalty", "wgan_gp_iteration", "STATS"]
