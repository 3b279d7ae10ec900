r"""SimSiam without the stop-gradient: the collapse of Chen & He 2021, Sec. 4.1.

    python -m ssl_jax.main --config=configs/simsiam_no_stopgrad.py:digits --workdir=runs/simsiam_no_stopgrad_digits
    python -m ssl_jax.main --config=configs/simsiam_no_stopgrad.py:cifar10 --workdir=runs/simsiam_no_stopgrad_cifar10

Every preset of ``configs/simsiam.py`` (digits, cifar10, imagenet) with
``config.simsiam.stop_gradient = False``: gradients flow into both branches
of :math:`\mathcal{D}(p_1, z_2)/2 + \mathcal{D}(p_2, z_1)/2`. The paper's
Fig. 2 (left: loss, middle: std of the L2-normalised output, right: kNN
accuracy) shows the loss reaching its minimum -1 at once, the std falling
to 0 and kNN accuracy to chance (Fig. 2 table: 0.1% linear accuracy). Here
the collapse metrics logged every ``train.log_every_steps`` show the same:
``embedding_std_ratio`` goes to about 0 and ``effective_rank`` to about 1,
the log says "representation collapse: ..." at the first step that shows
it, and the run's evaluation report repeats it.

On the digits preset (200 steps, SGD 0.2 x B/256) the loss reaches -0.97;
the std ratio of the L2-normalised predictions falls from 0.82 to 0.04 and
their effective rank from 35 to 1.01; the log warns from step 40; and the
encoder ends below its own random init (kNN 0.62 against 0.73, linear 0.78
against 0.89), where ``configs/simsiam.py:digits`` reaches 0.86 / 0.95
with the ratio at 0.97 and the rank at 2.5.
"""

import importlib.util
import os


def _simsiam_configs():
  """``configs/simsiam.py``, loaded by path: configs are files, not a package."""
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "simsiam.py")
  spec = importlib.util.spec_from_file_location("configs_simsiam_presets", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def get_config(preset="digits"):
  """SimSiam's ``preset`` with the stop-gradient removed."""
  config = _simsiam_configs().get_config(preset)
  config.simsiam.stop_gradient = False
  return config
