"""Every GCC preset builds its method and names loadable, held-out graphs."""

import pytest

from ssl_jax.graph import graphs
from ssl_jax.methods import gcc

from tests.conftest import load_config

PRESETS = ["default", "real", "paper", "tiny"]


@pytest.mark.parametrize("preset", PRESETS)
def test_preset_is_consistent(preset):
  config = load_config("gcc", preset)
  assert config.method == "gcc"
  assert config.gcc.queue_size % config.train.batch_size == 0
  assert config.gcc.temperature == 0.07
  assert 0 <= config.optim.warmup_steps < config.train.num_steps
  gcc.GCC(config, config.train.num_steps)  # the method's checks pass
  pretrain = set(graphs.parse_specs(config.graph.pretrain))
  evaluate = graphs.parse_specs(config.graph.evaluate)
  assert evaluate and not pretrain & set(evaluate)


@pytest.mark.parametrize("preset", ["default", "real"])
def test_evaluation_graphs_are_labelled_and_held_out(preset):
  config = load_config("gcc", preset)
  pretrain = [graphs.load_graph(s) for s in graphs.parse_specs(config.graph.pretrain)]
  seen = {frozenset(map(tuple, g.edges.tolist())) for g in pretrain}
  for spec in graphs.parse_specs(config.graph.evaluate):
    g = graphs.load_graph(spec)
    assert g.labels is not None and g.num_classes >= 2
    assert frozenset(map(tuple, g.edges.tolist())) not in seen


def test_paper_preset_follows_gcc():
  config = load_config("gcc", "paper")
  assert config.sampling.restart_prob == 0.8
  assert config.sampling.subgraph_size == 128
  assert config.gcc.momentum == 0.999 and config.gcc.queue_size == 16384
  assert config.optim.base_lr == 0.005 and config.train.batch_size == 32
