"""SimCLR v2: Big Self-Supervised Models are Strong Semi-Supervised Learners.

Chen, Kornblith, Swersky, Norouzi, Hinton (NeurIPS 2020),
https://arxiv.org/abs/2006.10029

SimCLR (``ssl_jax.methods.simclr``) with the three changes of Sec. 2.2:

- Networks: bigger and wider encoders f (ResNet-152 at 3x width in the
  paper; ``config.model.depth`` / ``width_multiplier`` go up to 152 / 3), and
  a deeper projection head g: three layers (``config.simclr.proj_layers =
  3``), Dense-BN-ReLU twice, then Dense-BN on the output (scale, no shift, as
  in the released code). Selective kernels (SK) are not implemented.
- Views and loss: SimCLR's two views and NT-Xent over the global batch.
- Fine-tuning "from the middle of the projection head": the network kept
  for downstream fine-tuning is the encoder plus the head's first layer
  (Dense-BN-ReLU); ``finetune_features`` gives its output.
- Not implemented: the MoCo-style memory buffer of Sec. 2.2 ("a modest
  improvement of ~1%" for 1% labels) and distillation (Sec. 2.3).
"""

from ssl_jax import augment
from ssl_jax.methods import base
from ssl_jax.methods import simclr


class SimCLRv2Network(base.SiameseNetwork):
  """SimCLR's network with the fine-tuning entry point of SimCLR v2."""

  def finetune_features(self, images, train: bool):
    """Output of the projection head's first layer: the fine-tuning input."""
    features = self.encoder(images, train=train)
    _, hiddens = self.projector(features, train=train, return_hidden=True)
    return hiddens[1]  # hiddens[0] is the head's input h


class SimCLRv2(simclr.SimCLR):
  """SimCLR v2; see the module docstring."""

  name = "simclr_v2"
  network_class = SimCLRv2Network
  proj_last_bn = True

  def __init__(self, config, num_classes, total_steps, axis_name=base.BATCH_AXIS):
    if config.simclr.proj_layers < 2:
      raise ValueError(
          f"config.simclr.proj_layers={config.simclr.proj_layers}: SimCLR v2 "
          "fine-tunes from the projection head's first layer, so the head "
          "needs at least 2 layers (the paper uses 3).")
    super().__init__(config, num_classes, total_steps, axis_name)

  def finetune_features(self, variables, images):
    """Encoder + first projection layer on uint8 images, test-time transform."""
    inputs = augment.batch_eval_views(images, self.view_recipes[0])
    return self.network.apply(variables, inputs, False,
                              method=SimCLRv2Network.finetune_features)
