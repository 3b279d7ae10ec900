"""One module per SSL method; ``get_method`` maps ``config.method`` to it."""

from ssl_jax.methods.simclr import SimCLR

METHODS = {SimCLR.name: SimCLR}


def get_method(config, num_classes):
  """Builds the method named by ``config.method``."""
  if config.method not in METHODS:
    raise ValueError(
        f"config.method={config.method!r} is not a known method; use one of "
        f"{sorted(METHODS)}.")
  return METHODS[config.method](config, num_classes)
