"""Test-wide setup: eight simulated CPU devices, so data-parallel code is
checked against one device in every test module.

The flag must be set before JAX initialises its backends, i.e. before the
first test module imports jax.
"""
import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
