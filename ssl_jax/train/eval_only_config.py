"""The config of ``--mode=eval`` when no ``--config`` is given.

``--mode=eval`` takes the networks, method and data from the run's saved
``config.json`` and only ``config.eval`` from the command line; without a
``--config`` file, ``config.eval`` starts from the library's defaults
(which no preset changes) and ``--config.eval.*`` flags override it:

    python -m ssl_jax.main --mode=eval --workdir=runs/simclr_digits \\
        --config.eval.protocols=knn,linear,semi_1pct

``config.method`` is empty: this config cannot train.
"""

from ssl_jax.train import defaults


def get_config():
  return defaults.base_config(method="")
