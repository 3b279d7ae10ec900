r"""Graphs as arrays: host-side loaders and a device-side CSR adjacency.

Host side (numpy): a :class:`GraphData` is one undirected simple graph with
nodes ``0 .. N-1``, its edge list (each edge once, ``u < v``), optional
integer node labels and a sentence saying what the labels are. Loaders:

* the real graphs networkx ships (``networkx.generators.social``):
  ``karate_club`` (Zachary 1977; 34 members, label = the ``'club'`` each
  member joined after the split: 0 Mr. Hi, 1 Officer), ``davis_southern_women``
  (Davis et al. 1941; 18 women x 14 events, label = the bipartite side: 0
  woman, 1 event), ``florentine_families`` (Padgett; 15 families, no label)
  and ``les_miserables`` (Knuth 1993; 77 characters, no label: networkx
  ships no ground-truth communities, and labels made by a community-detection
  algorithm would only measure that algorithm);
* seeded random-graph models: ``barabasi_albert`` (n, m), ``watts_strogatz``
  (n, k, p; connected), ``powerlaw_cluster`` (Holme-Kim: n, m, p), ``sbm``
  (stochastic block model: block ``sizes``, within-block ``p_in`` (one value
  or one per block), between-block ``p_out``; label = block) and
  ``ba_shapes`` (Ying et al. 2019, GNNExplainer Sec. 4: a Barabasi-Albert
  base with five-node "house" motifs attached and random noise edges; label
  = structural role: 0 base, 1 house node wired to the roof, 2 house floor,
  3 roof);
* ``edge_list``: a user's file, one ``u v`` pair per line (any tokens as
  node names, ``#`` comments and blank lines skipped, a third column such as
  a weight ignored), and an optional label file of ``node label`` lines.

Self-loops are dropped, repeated and reversed edges merged. A graph with no
node, or no edge once self-loops are gone, is an error (:class:`GraphError`,
a ``ValueError`` whose message names the graph, and for a file the file and
line, and says what to change).

Graphs are named by a spec string ``name`` or ``name:key=value,...``, e.g.
``barabasi_albert:n=500,m=3,seed=1`` or
``edge_list:path=data/g.txt,labels=data/g_labels.txt``; list values are
separated by ``/`` (``sbm:sizes=100/100/100,p_in=0.1,p_out=0.005,seed=3``).
``load_graph(spec)`` builds one, ``parse_specs('a; b')`` splits a list.

Device side: :class:`Graph` is the disjoint union of one or more graphs in
CSR form (``row_ptr`` (N+1,), ``col`` (2E,) sorted within each row,
``degree`` (N,)), with ``node_offsets`` (G+1,) marking where each graph's
nodes start, so a batch of several graphs is one array set with node
offsets and a random walk never leaves the graph it starts in.
:func:`has_edge` answers adjacency queries by a fixed-step bisection of a
row, so the induced adjacency of any node set is computable under ``jit``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Sequence

import flax
import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np


class GraphError(ValueError):
  """A graph that cannot be used; the message names it and the fix."""


@dataclasses.dataclass(frozen=True)
class GraphData:
  """One undirected simple graph on the host.

  Attributes:
    name: the spec it was loaded from (or a name given by the caller).
    num_nodes: N; nodes are ``0 .. N-1``.
    edges: int32 ``(E, 2)``, each undirected edge once with ``u < v``,
      sorted, no self-loops.
    labels: int32 ``(N,)`` node labels in ``[0, C)``, or None.
    label_names: the C class names (index = label).
    label_description: what the label is, in one sentence ('' if none).
    node_names: the original name of every node (index = node id).
  """

  name: str
  num_nodes: int
  edges: np.ndarray
  labels: np.ndarray | None = None
  label_names: tuple[str, ...] = ()
  label_description: str = ""
  node_names: tuple[str, ...] = ()

  @property
  def num_edges(self) -> int:
    return int(self.edges.shape[0])

  @property
  def num_classes(self) -> int:
    return len(self.label_names)

  def degrees(self) -> np.ndarray:
    return np.bincount(self.edges.ravel(), minlength=self.num_nodes)

  def to_networkx(self) -> nx.Graph:
    g = nx.Graph()
    g.add_nodes_from(range(self.num_nodes))
    g.add_edges_from(self.edges.tolist())
    return g


def _clean_edges(name, num_nodes, pairs):
  """``(E, 2)`` int32 edges with u < v, unique and sorted; errors on an empty
  or self-loop-only graph."""
  if num_nodes <= 0:
    raise GraphError(f"graph {name!r} has no nodes; give a graph with at "
                     "least one edge.")
  pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
  if pairs.size and (pairs.min() < 0 or pairs.max() >= num_nodes):
    raise GraphError(f"graph {name!r} has an edge to a node outside "
                     f"0..{num_nodes - 1}.")
  loops = pairs[:, 0] == pairs[:, 1]
  pairs = np.sort(pairs[~loops], axis=1)
  if pairs.shape[0] == 0:
    what = ("only self-loops" if loops.any() else "no edges")
    raise GraphError(
        f"graph {name!r} has {what}: nothing to sample subgraphs from; give "
        "a graph with at least one edge between two different nodes.")
  pairs = np.unique(pairs, axis=0)
  return pairs.astype(np.int32)


def from_networkx(g, name, label_attr=None, label_order=None,
                  label_description=""):
  """A :class:`GraphData` from a networkx graph (directions, multi-edges and
  weights dropped; nodes numbered in ``g.nodes`` order).

  Args:
    g: a networkx graph.
    name: the graph's name in messages and reports.
    label_attr: node attribute holding the label (None: unlabelled).
    label_order: the attribute's values in label order (default: sorted).
    label_description: what the label means.
  """
  nodes = list(g.nodes)
  index = {v: i for i, v in enumerate(nodes)}
  pairs = [(index[u], index[v]) for u, v in g.edges()]
  edges = _clean_edges(name, len(nodes), pairs)
  labels, label_names = None, ()
  if label_attr is not None:
    values = [g.nodes[v].get(label_attr) for v in nodes]
    missing = [nodes[i] for i, value in enumerate(values) if value is None]
    if missing:
      raise GraphError(f"graph {name!r}: nodes {missing[:5]} have no "
                       f"{label_attr!r} attribute.")
    order = list(label_order) if label_order is not None else sorted(
        set(values), key=str)
    labels = np.asarray([order.index(v) for v in values], np.int32)
    label_names = tuple(str(v) for v in order)
  return GraphData(name=name, num_nodes=len(nodes), edges=edges,
                   labels=labels, label_names=label_names,
                   label_description=label_description,
                   node_names=tuple(str(v) for v in nodes))


# ----------------------------------------------------------------------------
# The real graphs networkx ships.
# ----------------------------------------------------------------------------
def karate_club(name="karate_club"):
  """Zachary's karate club; label = the club each member joined (0 Mr. Hi,
  1 Officer), networkx's ``'club'`` attribute."""
  return from_networkx(
      nx.karate_club_graph(), name, "club", ("Mr. Hi", "Officer"),
      "the club each member joined after the split (networkx 'club' "
      "attribute): 0 Mr. Hi, 1 Officer")


def davis_southern_women(name="davis_southern_women"):
  """Davis' southern women and the events they attended (bipartite); label =
  the side (0 woman, 1 event), networkx's ``'bipartite'`` attribute."""
  return from_networkx(
      nx.davis_southern_women_graph(), name, "bipartite", (0, 1),
      "the bipartite side (networkx 'bipartite' attribute): 0 woman, 1 event")


def florentine_families(name="florentine_families"):
  """Padgett's Florentine families (marriage ties); unlabelled."""
  return from_networkx(nx.florentine_families_graph(), name)


def les_miserables(name="les_miserables"):
  """Co-appearances in Les Miserables (weights dropped); unlabelled."""
  return from_networkx(nx.les_miserables_graph(), name)


# ----------------------------------------------------------------------------
# Seeded random-graph models.
# ----------------------------------------------------------------------------
def barabasi_albert(n, m, seed, name=None):
  """Barabasi-Albert preferential attachment, ``n`` nodes, ``m`` edges each."""
  _check_positive(name or "barabasi_albert", n=n, m=m)
  if m >= n:
    raise GraphError(f"barabasi_albert needs m < n; got n={n}, m={m}.")
  return from_networkx(nx.barabasi_albert_graph(n, m, seed=seed),
                       name or f"barabasi_albert:n={n},m={m},seed={seed}")


def watts_strogatz(n, k, p, seed, name=None):
  """Connected Watts-Strogatz small world: ring of ``n`` nodes each joined to
  ``k`` nearest neighbours, edges rewired with probability ``p``."""
  _check_positive(name or "watts_strogatz", n=n, k=k)
  if not (2 <= k < n and 0 <= p <= 1):
    raise GraphError(f"watts_strogatz needs 2 <= k < n and 0 <= p <= 1; "
                     f"got n={n}, k={k}, p={p}.")
  return from_networkx(
      nx.connected_watts_strogatz_graph(n, k, p, seed=seed),
      name or f"watts_strogatz:n={n},k={k},p={p},seed={seed}")


def powerlaw_cluster(n, m, p, seed, name=None):
  """Holme-Kim power-law graph with tunable clustering (triangle step ``p``)."""
  _check_positive(name or "powerlaw_cluster", n=n, m=m)
  if not (m < n and 0 <= p <= 1):
    raise GraphError(f"powerlaw_cluster needs m < n and 0 <= p <= 1; got "
                     f"n={n}, m={m}, p={p}.")
  return from_networkx(nx.powerlaw_cluster_graph(n, m, p, seed=seed),
                       name or f"powerlaw_cluster:n={n},m={m},p={p},seed={seed}")


def stochastic_block_model(sizes, p_in, p_out, seed, name=None):
  """SBM with blocks of ``sizes``; edge probability ``p_in`` (one value or one
  per block) inside block, ``p_out`` between blocks. Label = block."""
  name = name or ("sbm:sizes=" + "/".join(map(str, sizes)) + ",p_in="
                  + "/".join(map(str, np.atleast_1d(p_in))) + f",p_out={p_out}"
                  f",seed={seed}")
  sizes = [int(s) for s in sizes]
  p_in = np.broadcast_to(np.asarray(p_in, float), (len(sizes),))
  if not sizes or min(sizes) < 1:
    raise GraphError(f"graph {name!r}: block sizes must be positive.")
  probs = np.full((len(sizes), len(sizes)), float(p_out))
  np.fill_diagonal(probs, p_in)
  if probs.min() < 0 or probs.max() > 1:
    raise GraphError(f"graph {name!r}: probabilities must be in [0, 1].")
  g = nx.stochastic_block_model(sizes, probs.tolist(), seed=seed)
  return from_networkx(
      g, name, "block", list(range(len(sizes))),
      "the SBM block the node was generated in")


HOUSE_ROLES = ("base", "house (wired to roof)", "house floor", "roof")


def ba_shapes(base, m, houses, noise, seed, name=None):
  """BA-Shapes (Ying et al. 2019, "GNNExplainer", Sec. 4 and its
  ``gengraph.gen_syn1``): a Barabasi-Albert graph of ``base`` nodes (``m``
  edges per new node), ``houses`` five-node houses (a square ``a-b-c-d-a``
  with a roof ``e`` joined to ``a`` and ``b``), each house's ``a`` wired to a
  random base node, then ``round(noise * E)`` random edges between random
  node pairs. Label = structural role: 0 base, 1 ``a``/``b`` (the house
  nodes under the roof), 2 ``c``/``d`` (the floor), 3 ``e`` (the roof), as
  GNNExplainer's ``shapes.house`` roles."""
  name = name or (f"ba_shapes:base={base},m={m},houses={houses},"
                  f"noise={noise},seed={seed}")
  _check_positive(name, base=base, m=m)
  if m >= base or houses < 0 or noise < 0:
    raise GraphError(f"graph {name!r} needs m < base, houses >= 0, noise >= 0.")
  rng = np.random.default_rng(seed)
  g = nx.barabasi_albert_graph(base, m, seed=int(rng.integers(2**31)))
  labels = [0] * base
  for h in range(houses):
    a = base + 5 * h
    b, c, d, e = a + 1, a + 2, a + 3, a + 4
    g.add_edges_from([(a, b), (b, c), (c, d), (d, a), (e, a), (e, b),
                      (a, int(rng.integers(base)))])
    labels += [1, 1, 2, 2, 3]
  n = g.number_of_nodes()
  extra = int(round(noise * g.number_of_edges()))
  for _ in range(extra):
    u, v = rng.integers(n, size=2)
    if u != v:
      g.add_edge(int(u), int(v))
  nx.set_node_attributes(g, dict(enumerate(labels)), "role")
  return from_networkx(
      g, name, "role", list(range(4)),
      "structural role by construction: 0 base (BA) node, 1 house node "
      "under the roof, 2 house floor node, 3 roof (GNNExplainer's "
      "BA-Shapes)")


def _check_positive(name, **values):
  bad = {k: v for k, v in values.items() if not v > 0}
  if bad:
    raise GraphError(f"graph {name!r}: {bad} must be positive.")


# ----------------------------------------------------------------------------
# A user's edge list.
# ----------------------------------------------------------------------------
def edge_list(path, labels=None, name=None):
  """A graph from an edge-list file, optionally labelled.

  Args:
    path: text file, one edge ``u v`` per line (node names are any
      whitespace-free tokens; a third column, e.g. a weight, is ignored;
      blank lines and lines starting with ``#`` are skipped).
    labels: optional text file of ``node label`` lines naming every node of
      the edge list (labels are any tokens, numbered in sorted order; integer
      labels sort numerically).
    name: the graph's name (default: the spec).

  Raises:
    GraphError: the file is missing or unreadable, a line is not ``u v``
      (the message gives the file and the line number), the graph is empty
      or self-loop-only, or the label file misses nodes, repeats one or names
      nodes the edge list does not have.
  """
  name = name or f"edge_list:path={path}" + (f",labels={labels}" if labels else "")
  index, pairs = {}, []
  for lineno, fields in _read_lines(path, name):
    if len(fields) < 2 or len(fields) > 3:
      raise GraphError(
          f"{path}:{lineno}: expected an edge 'u v' (optionally 'u v weight'), "
          f"got {' '.join(fields)!r}; fix or remove that line (# starts a "
          "comment).")
    u, v = (index.setdefault(t, len(index)) for t in fields[:2])
    pairs.append((u, v))
  if not index:
    raise GraphError(f"{path}: no edges (the file is empty or all comments); "
                     "give one 'u v' pair per line.")
  names = list(index)
  edges = _clean_edges(name, len(names), pairs)
  label_array, label_names = None, ()
  if labels:
    per_node = {}
    for lineno, fields in _read_lines(labels, name):
      if len(fields) != 2:
        raise GraphError(f"{labels}:{lineno}: expected 'node label', got "
                         f"{' '.join(fields)!r}.")
      node, label = fields
      if node not in index:
        raise GraphError(f"{labels}:{lineno}: node {node!r} is not in the edge "
                         f"list {path}.")
      if node in per_node:
        raise GraphError(f"{labels}:{lineno}: node {node!r} is labelled twice.")
      per_node[node] = label
    missing = [v for v in names if v not in per_node]
    if missing:
      raise GraphError(f"{labels}: no label for node(s) {missing[:5]}"
                       f"{' ...' if len(missing) > 5 else ''} of {path}; label "
                       "every node.")
    label_names = tuple(sorted(set(per_node.values()), key=_label_sort_key))
    label_array = np.asarray(
        [label_names.index(per_node[v]) for v in names], np.int32)
  return GraphData(name=name, num_nodes=len(names), edges=edges,
                   labels=label_array, label_names=label_names,
                   label_description=(f"the label in {labels}" if labels else ""),
                   node_names=tuple(names))


def _label_sort_key(token):
  try:
    return (0, float(token), token)
  except ValueError:
    return (1, 0.0, token)


def _read_lines(path, name):
  """``(line number, fields)`` of the non-blank, non-comment lines."""
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except FileNotFoundError:
    raise GraphError(f"graph {name!r}: no file {path!r}.") from None
  except (OSError, UnicodeDecodeError) as e:
    raise GraphError(f"graph {name!r}: cannot read {path!r}: {e}.") from None
  for lineno, line in enumerate(text.splitlines(), 1):
    line = line.split("#", 1)[0].strip()
    if line:
      yield lineno, line.split()


# ----------------------------------------------------------------------------
# Specs.
# ----------------------------------------------------------------------------
_INT, _FLOAT, _STR = int, float, str
_INTS, _FLOATS = "ints", "floats"

# name -> (loader, {parameter: type}, required parameters)
LOADERS = {
    "karate_club": (karate_club, {}, ()),
    "davis_southern_women": (davis_southern_women, {}, ()),
    "florentine_families": (florentine_families, {}, ()),
    "les_miserables": (les_miserables, {}, ()),
    "barabasi_albert": (barabasi_albert,
                        {"n": _INT, "m": _INT, "seed": _INT}, ("n", "m")),
    "watts_strogatz": (watts_strogatz,
                       {"n": _INT, "k": _INT, "p": _FLOAT, "seed": _INT},
                       ("n", "k", "p")),
    "powerlaw_cluster": (powerlaw_cluster,
                         {"n": _INT, "m": _INT, "p": _FLOAT, "seed": _INT},
                         ("n", "m", "p")),
    "sbm": (stochastic_block_model,
            {"sizes": _INTS, "p_in": _FLOATS, "p_out": _FLOAT, "seed": _INT},
            ("sizes", "p_in", "p_out")),
    "ba_shapes": (ba_shapes,
                  {"base": _INT, "m": _INT, "houses": _INT, "noise": _FLOAT,
                   "seed": _INT}, ()),
    "edge_list": (edge_list, {"path": _STR, "labels": _STR}, ("path",)),
}
_DEFAULTS = {"seed": 0}
_BA_SHAPES_DEFAULTS = {"base": 300, "m": 5, "houses": 80, "noise": 0.1}
REAL_GRAPHS = ("karate_club", "davis_southern_women", "florentine_families",
               "les_miserables")


def parse_specs(text):
  """``'a; b:x=1'`` -> ``('a', 'b:x=1')`` (``;`` or newlines separate)."""
  if isinstance(text, (list, tuple)):
    return tuple(str(t).strip() for t in text if str(t).strip())
  return tuple(t.strip() for t in str(text).replace("\n", ";").split(";")
               if t.strip())


def _parse_value(spec, key, text, kind):
  try:
    if kind is _INT:
      return int(text)
    if kind is _FLOAT:
      return float(text)
    if kind == _INTS:
      return [int(t) for t in text.split("/")]
    if kind == _FLOATS:
      values = [float(t) for t in text.split("/")]
      return values[0] if len(values) == 1 else values
    return text
  except ValueError:
    raise GraphError(f"graph spec {spec!r}: {key}={text!r} is not "
                     f"{'an int' if kind is _INT else 'a number'}"
                     f"{' list (a/b/c)' if kind in (_INTS, _FLOATS) else ''}."
                     ) from None


def load_graph(spec):
  """The :class:`GraphData` named by ``spec`` (see the module docstring)."""
  spec = str(spec).strip()
  name, _, arg_text = spec.partition(":")
  name = name.strip()
  if name not in LOADERS:
    raise GraphError(f"unknown graph {name!r} in spec {spec!r}; use one of "
                     f"{sorted(LOADERS)}.")
  loader, types, required = LOADERS[name]
  kwargs = {}
  for item in filter(None, (a.strip() for a in arg_text.split(","))):
    key, eq, value = item.partition("=")
    key = key.strip()
    if not eq or key not in types:
      raise GraphError(
          f"graph spec {spec!r}: {item!r} is not key=value with a key of "
          f"{name} ({', '.join(types) or 'it takes no parameters'}).")
    kwargs[key] = _parse_value(spec, key, value.strip(), types[key])
  missing = [k for k in required if k not in kwargs]
  if missing:
    raise GraphError(f"graph spec {spec!r} misses {missing}; e.g. "
                     f"{name}:" + ",".join(f"{k}=..." for k in required))
  if "seed" in types:
    kwargs = {**_DEFAULTS, **kwargs}
  if name == "ba_shapes":
    kwargs = {**_BA_SHAPES_DEFAULTS, **kwargs}
  if types:
    return loader(**kwargs, name=spec)
  return loader(name=spec)


# ----------------------------------------------------------------------------
# Device side.
# ----------------------------------------------------------------------------
@flax.struct.dataclass
class Graph:
  """The disjoint union of one or more graphs, in CSR form, on device.

  Attributes:
    row_ptr: int32 ``(N+1,)``: node u's neighbours are
      ``col[row_ptr[u]:row_ptr[u+1]]``.
    col: int32 ``(2E,)`` neighbour ids (global), ascending within a row.
    degree: int32 ``(N,)``, ``row_ptr[u+1] - row_ptr[u]``.
    node_offsets: int32 ``(G+1,)``: graph g holds nodes
      ``[node_offsets[g], node_offsets[g+1])``.
    search_steps: static; bisection steps of :func:`has_edge`,
      ``ceil(log2(max_degree + 1))``.
  """

  row_ptr: jax.Array
  col: jax.Array
  degree: jax.Array
  node_offsets: jax.Array
  search_steps: int = flax.struct.field(pytree_node=False, default=1)

  @property
  def num_nodes(self):
    return self.degree.shape[0]


def to_device(graphs: Sequence[GraphData] | GraphData) -> Graph:
  """The CSR :class:`Graph` of the disjoint union of ``graphs``, in order.

  Node ``v`` of ``graphs[g]`` becomes node ``node_offsets[g] + v``.
  """
  if isinstance(graphs, GraphData):
    graphs = [graphs]
  if not graphs:
    raise GraphError("no graphs given; name at least one.")
  offsets = np.cumsum([0] + [g.num_nodes for g in graphs])
  total = int(offsets[-1])
  if 2 * sum(g.num_edges for g in graphs) >= 2**31:
    raise GraphError("more than 2^30 edges do not fit int32 CSR indices.")
  directed = np.concatenate(
      [np.concatenate([g.edges, g.edges[:, ::-1]]) + off
       for g, off in zip(graphs, offsets[:-1])]).astype(np.int64)
  order = np.lexsort((directed[:, 1], directed[:, 0]))
  directed = directed[order]
  degree = np.bincount(directed[:, 0], minlength=total)
  row_ptr = np.concatenate([[0], np.cumsum(degree)])
  max_degree = int(degree.max(initial=0))
  return Graph(
      row_ptr=jnp.asarray(row_ptr, jnp.int32),
      col=jnp.asarray(directed[:, 1], jnp.int32),
      degree=jnp.asarray(degree, jnp.int32),
      node_offsets=jnp.asarray(offsets, jnp.int32),
      search_steps=max(1, math.ceil(math.log2(max_degree + 1))))


def has_edge(graph: Graph, u, v):
  """Whether ``u -- v`` is an edge, elementwise over broadcast ``u``, ``v``.

  A bisection of row ``u`` (ascending) for ``v`` in ``graph.search_steps``
  fixed steps, so it traces to a static program. Ids outside ``[0, N)`` give
  False.
  """
  u, v = jnp.broadcast_arrays(jnp.asarray(u, jnp.int32), jnp.asarray(v, jnp.int32))
  n = graph.num_nodes
  inside = (u >= 0) & (u < n) & (v >= 0) & (v < n)
  uc = jnp.clip(u, 0, n - 1)
  lo = graph.row_ptr[uc]
  end = graph.row_ptr[uc + 1]
  hi = end
  last = graph.col.shape[0] - 1
  for _ in range(graph.search_steps):  # static: the row length's log2
    mid = (lo + hi) // 2
    smaller = jnp.take(graph.col, jnp.clip(mid, 0, last)) < v
    active = lo < hi
    lo = jnp.where(active & smaller, mid + 1, lo)
    hi = jnp.where(active & ~smaller, mid, hi)
  found = (lo < end) & (jnp.take(graph.col, jnp.clip(lo, 0, last)) == v)
  return inside & found


def graph_of_node(graph: Graph, nodes):
  """The index g of the graph each node belongs to."""
  return jnp.searchsorted(graph.node_offsets, nodes, side="right") - 1
