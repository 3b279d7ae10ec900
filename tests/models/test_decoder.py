"""UpsamplingDecoder: output sizes, the doubling count, widths, zero start."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ssl_jax import models
from ssl_jax.models.decoder import num_doublings


@pytest.mark.parametrize("feature_size,output_size,steps",
                         [(4, 32, 3), (1, 8, 3), (7, 7, 0), (7, 56, 3)])
def test_num_doublings(feature_size, output_size, steps):
  assert num_doublings(feature_size, output_size) == steps


def test_unreachable_size_is_refused():
  with pytest.raises(ValueError, match="power of two"):
    num_doublings(4, 24)


def test_shapes_widths_and_zero_initial_output():
  decoder = models.UpsamplingDecoder(output_size=16, widths=(12, 6),
                                     out_channels=5)
  feature_map = jax.random.normal(jax.random.PRNGKey(0), (2, 2, 2, 24))
  variables = decoder.init(jax.random.PRNGKey(1), feature_map, train=False)
  kernels = {name: p["kernel"].shape for name, p in variables["params"].items()
             if isinstance(p, dict) and "kernel" in p}
  # Three doublings (2 -> 16): widths 12, 6, then the last width repeats.
  assert kernels == {"up1_conv": (3, 3, 24, 12), "up2_conv": (3, 3, 12, 6),
                     "up3_conv": (3, 3, 6, 6), "out_conv": (3, 3, 6, 5)}
  out, _ = decoder.apply(variables, feature_map, train=True,
                         mutable=["batch_stats"])
  assert out.shape == (2, 16, 16, 5) and out.dtype == jnp.float32
  # The output convolution starts at zero: the first prediction is 0.
  np.testing.assert_array_equal(out, 0.0)


def test_non_square_map_is_refused():
  decoder = models.UpsamplingDecoder(output_size=8, widths=(4,),
                                     out_channels=3)
  with pytest.raises(ValueError, match="square"):
    decoder.init(jax.random.PRNGKey(0), jnp.zeros((1, 2, 4, 8)), train=False)
