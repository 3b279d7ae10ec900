"""Loaders (networkx's real graphs, random models, edge-list files), their
error messages, the device CSR union and its adjacency queries."""

import jax
import networkx as nx
import numpy as np
import pytest

from ssl_jax.graph import graphs


def _edge_set(g):
  return {tuple(sorted(e)) for e in g.edges.tolist()}


@pytest.mark.parametrize("name,nx_graph,nodes", [
    ("karate_club", nx.karate_club_graph, 34),
    ("les_miserables", nx.les_miserables_graph, 77),
    ("florentine_families", nx.florentine_families_graph, 15),
    ("davis_southern_women", nx.davis_southern_women_graph, 32),
])
def test_real_graphs_match_networkx(name, nx_graph, nodes):
  g = graphs.load_graph(name)
  reference = nx_graph()
  assert g.num_nodes == nodes == reference.number_of_nodes()
  assert g.num_edges == reference.number_of_edges()
  index = {v: i for i, v in enumerate(reference.nodes)}
  assert _edge_set(g) == {tuple(sorted((index[u], index[v])))
                          for u, v in reference.edges}
  assert np.all(g.edges[:, 0] < g.edges[:, 1])


def test_real_graph_labels():
  karate = graphs.load_graph("karate_club")
  reference = nx.karate_club_graph()
  assert karate.label_names == ("Mr. Hi", "Officer")
  assert [karate.label_names[c] for c in karate.labels] == [
      reference.nodes[v]["club"] for v in reference.nodes]
  davis = graphs.load_graph("davis_southern_women")
  assert np.bincount(davis.labels).tolist() == [18, 14]  # women, events
  assert graphs.load_graph("les_miserables").labels is None


def test_random_models_are_seeded_and_labelled():
  a = graphs.load_graph("barabasi_albert:n=50,m=2,seed=3")
  assert _edge_set(a) == _edge_set(graphs.load_graph("barabasi_albert:n=50,m=2,seed=3"))
  assert _edge_set(a) != _edge_set(graphs.load_graph("barabasi_albert:n=50,m=2,seed=4"))
  sbm = graphs.load_graph("sbm:sizes=10/20,p_in=0.5/0.3,p_out=0.01,seed=1")
  assert np.bincount(sbm.labels).tolist() == [10, 20]
  shapes = graphs.load_graph("ba_shapes:base=30,m=2,houses=4,noise=0,seed=0")
  assert np.bincount(shapes.labels).tolist() == [30, 8, 8, 4]
  # Without noise, each roof has degree 2 and each house 6 internal edges + 1.
  degrees = shapes.degrees()
  assert np.all(degrees[shapes.labels == 3] == 2)
  ws = graphs.load_graph("watts_strogatz:n=40,k=4,p=0.1,seed=0")
  assert nx.is_connected(ws.to_networkx())


def test_edge_list_file(tmp_path):
  path = tmp_path / "g.txt"
  path.write_text("# a comment\nalice bob\nbob carol 2.5\n\ncarol alice\n"
                  "alice alice\nbob alice\n")
  labels = tmp_path / "labels.txt"
  labels.write_text("alice 1\nbob 0\ncarol 1\n")
  g = graphs.load_graph(f"edge_list:path={path},labels={labels}")
  assert g.node_names == ("alice", "bob", "carol")
  assert _edge_set(g) == {(0, 1), (1, 2), (0, 2)}  # loop and repeat dropped
  assert g.labels.tolist() == [1, 0, 1]


def test_edge_list_errors_name_file_and_line(tmp_path):
  path = tmp_path / "bad.txt"
  path.write_text("1 2\n2 3\n3\n")
  with pytest.raises(graphs.GraphError, match=rf"{path}:3: expected an edge"):
    graphs.edge_list(str(path))
  loops = tmp_path / "loops.txt"
  loops.write_text("1 1\n2 2\n")
  with pytest.raises(graphs.GraphError, match="only self-loops"):
    graphs.edge_list(str(loops))
  empty = tmp_path / "empty.txt"
  empty.write_text("# nothing\n")
  with pytest.raises(graphs.GraphError, match="no edges"):
    graphs.edge_list(str(empty))
  with pytest.raises(graphs.GraphError, match="no file"):
    graphs.edge_list(str(tmp_path / "missing.txt"))
  good = tmp_path / "good.txt"
  good.write_text("1 2\n2 3\n")
  partial = tmp_path / "labels.txt"
  partial.write_text("1 a\n2 b\n")
  with pytest.raises(graphs.GraphError, match=r"no label for node\(s\) \['3'\]"):
    graphs.edge_list(str(good), str(partial))


def test_spec_errors():
  with pytest.raises(graphs.GraphError, match="unknown graph 'karate'"):
    graphs.load_graph("karate")
  with pytest.raises(graphs.GraphError, match="misses"):
    graphs.load_graph("barabasi_albert:n=10")
  with pytest.raises(graphs.GraphError, match="is not an int"):
    graphs.load_graph("barabasi_albert:n=ten,m=2")
  assert graphs.parse_specs("a; b:x=1,y=2\n c") == ("a", "b:x=1,y=2", "c")


def test_union_csr_and_has_edge():
  parts = [graphs.load_graph("florentine_families"),
           graphs.load_graph("karate_club")]
  union = graphs.to_device(parts)
  assert union.node_offsets.tolist() == [0, 15, 49]
  dense = np.zeros((49, 49), bool)
  for g, off in zip(parts, (0, 15)):
    dense[g.edges[:, 0] + off, g.edges[:, 1] + off] = True
  dense |= dense.T
  np.testing.assert_array_equal(np.asarray(union.degree), dense.sum(1))
  u, v = np.meshgrid(np.arange(-1, 50), np.arange(-1, 50), indexing="ij")
  found = np.asarray(jax.jit(graphs.has_edge)(union, u, v))
  expected = np.zeros_like(found)
  expected[1:-1, 1:-1] = dense
  np.testing.assert_array_equal(found, expected)
  np.testing.assert_array_equal(
      np.asarray(jax.jit(graphs.graph_of_node)(union, np.array([0, 14, 15, 48]))),
      [0, 0, 1, 1])
