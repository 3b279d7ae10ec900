"""SimSiam presets: the paper's values, the no-stop-gradient variant through
both loaders, and the ImageNet ResNet-50 state builds (abstract shapes)."""

import jax
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from ssl_jax import methods
from ssl_jax.augment import recipes
from ssl_jax.train import optim

from tests.conftest import REPO_ROOT, load_config

PRESETS = ["digits", "cifar10", "imagenet"]


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_is_consistent(preset):
  config = load_config("simsiam", preset)
  assert config.method == "simsiam"
  assert config.train.batch_size % 8 == 0
  assert config.simsiam.stop_gradient is True
  assert (config.optim.name, config.optim.momentum) == ("sgd", 0.9)
  assert config.optim.warmup_steps == 0
  assert tuple(config.optim.fixed_lr_modules) == ("predictor",)
  assert config.augment_view2 is None  # both views from one recipe
  method = methods.get_method(config, num_classes=10, total_steps=100)
  assert method.target_modules == ()


def test_unknown_preset_is_refused():
  with pytest.raises(ValueError, match="digits"):
    load_config("simsiam", "imagenet21k")


def test_imagenet_is_the_papers_baseline():
  config = load_config("simsiam", "imagenet")
  assert (config.model.depth, config.model.stem) == (50, "imagenet")
  assert (config.train.batch_size, config.train.num_epochs) == (512, 100)
  assert (config.optim.base_lr, config.optim.weight_decay) == (0.05, 1e-4)
  assert (config.simsiam.proj_layers, config.simsiam.proj_hidden_dim,
          config.simsiam.proj_dim, config.simsiam.pred_hidden_dim) == (
              3, 2048, 2048, 512)
  assert config.augment.to_dict() == recipes.mocov2(224).to_dict()


def test_cifar10_is_appendix_d():
  config = load_config("simsiam", "cifar10")
  assert (config.model.depth, config.model.stem) == (18, "cifar")
  assert config.simsiam.proj_layers == 2
  assert (config.train.batch_size, config.train.num_epochs) == (512, 800)
  assert (config.optim.base_lr, config.optim.weight_decay) == (0.03, 5e-4)
  assert tuple(config.augment.crop_scale) == (0.2, 1.0)
  assert config.augment.crop_size == 32


@pytest.mark.parametrize("preset", PRESETS)
def test_no_stopgrad_is_simsiam_without_the_stop_gradient(preset):
  plain = load_config("simsiam", preset).to_dict()
  ablation = load_config("simsiam_no_stopgrad", preset).to_dict()
  assert ablation["simsiam"].pop("stop_gradient") is False
  assert plain["simsiam"].pop("stop_gradient") is True
  assert ablation == plain


@pytest.mark.parametrize("cwd", ["repo", "elsewhere"])
def test_no_stopgrad_loads_through_the_command_line_flag(cwd, monkeypatch,
                                                         tmp_path):
  monkeypatch.chdir(REPO_ROOT if cwd == "repo" else tmp_path)
  path = ("configs/simsiam_no_stopgrad.py" if cwd == "repo"
          else str(REPO_ROOT / "configs" / "simsiam_no_stopgrad.py"))
  flag_values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=flag_values)
  flag_values(["ssl_jax.main", f"--config={path}:cifar10"])
  config = flag_values.config
  assert config.method == "simsiam"
  assert config.simsiam.stop_gradient is False
  assert config.optim.base_lr == 0.03  # the cifar10 preset


def test_imagenet_state_has_the_papers_heads():
  config = load_config("simsiam", "imagenet")
  method = methods.get_method(config, num_classes=1000, total_steps=10)
  tx, _ = optim.make_optimizer(config.optim, 10, config.train.batch_size)
  state = jax.eval_shape(
      lambda: method.init_state(jax.random.PRNGKey(0), (256, 256, 3), tx))
  params, stats = state.params, state.batch_stats
  shape = lambda p: tuple(p["kernel"].shape)  # noqa: E731
  projector = params["projector"]
  assert sorted(projector) == ["bn1", "bn2", "dense1", "dense2", "dense_out"]
  assert [shape(projector[k]) for k in ("dense1", "dense2", "dense_out")] == [
      (2048, 2048)] * 3
  assert "bias" not in projector["dense_out"]
  assert "bn_out" in stats["projector"]  # BN on the output, no affine params
  predictor = params["predictor"]
  assert sorted(predictor) == ["bn1", "dense1", "dense_out"]
  assert shape(predictor["dense1"]) == (2048, 512)
  assert shape(predictor["dense_out"]) == (512, 2048)
  assert state.ema_params is None
  count = lambda tree: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))  # noqa: E731
  assert 23.4e6 < count(params["encoder"]) < 23.6e6
