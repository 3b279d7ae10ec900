"""The data-parallel step: 8 devices give the numbers of 1 device."""

from tests.conftest import tiny_simclr_config
from tests.methods.common import assert_eight_devices_match_one


def test_eight_devices_match_one_device():
  assert_eight_devices_match_one(tiny_simclr_config())
