"""ssl_jax: accelerator-native self-supervised learning in JAX/Flax."""

__version__ = "0.1.0"
