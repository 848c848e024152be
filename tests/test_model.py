"""HookedGNN: decoders per feature type, batching, hint encoding, checkpoints."""

import io

import pytest
import torch

from hookgnn import FeatureSpec, Field, Graph, HookedGNN
from hookgnn.ops import scatter_softmax

SPEC = {
    "d": FeatureSpec("output", "node", "scalar"),
    "reach": FeatureSpec("output", "node", "mask"),
    "src": FeatureSpec("output", "node", "mask_one"),
    "colour": FeatureSpec("output", "node", "categorical", dim=3),
    "pi": FeatureSpec("output", "node", "pointer"),
    "bridge": FeatureSpec("output", "edge", "mask"),
    "weight": FeatureSpec("output", "graph", "scalar"),
    "pi_h": FeatureSpec("hint", "node", "pointer"),
    "d_h": FeatureSpec("hint", "node", "scalar"),
}


def graph(n: int, seed: int, steps: int = 3) -> Graph:
    gen = torch.Generator().manual_seed(seed)
    loops = torch.arange(n)
    extra = torch.randint(0, max(n, 1), (2, 2 * n), generator=gen)
    ei = torch.cat([torch.stack([loops, loops]), extra], dim=1)
    e = ei.shape[1]
    pi = torch.zeros(steps, e)
    pi[:, :n] = 1.0  # everybody points to itself
    return Graph(x=torch.randn(n, 2, generator=gen), edge_index=ei, edge_attr=torch.rand(e, 1, generator=gen),
                 fields={"pi_h": Field(pi, "edge", time=True), "d_h": Field(torch.randn(steps, n, generator=gen), "node", time=True)})


def model(encode_hints: bool = False) -> HookedGNN:
    torch.manual_seed(0)
    return HookedGNN("mpnn", d_hidden=8, node_in=2, edge_in=1, spec=SPEC, max_steps=4, encode_hints=encode_hints)


def test_decoders_give_one_prediction_per_item_of_their_location():
    g = Graph.collate([graph(4, 0), graph(0, 1), graph(3, 2)])
    out = model()(g, steps=2)
    n, e = g.num_nodes, g.num_edges
    shapes = {k: tuple(v.shape) for k, v in out.outputs.items()}
    assert shapes == {"d": (n,), "reach": (n,), "src": (n,), "colour": (n, 3), "pi": (e,), "bridge": (e,), "weight": (3,)}
    assert out.hints["pi_h"].shape == (2, e) and out.hints["d_h"].shape == (2, n)
    probs = scatter_softmax(out["pi"], g.edge_index[1], n)
    per_node = torch.zeros(n).index_add(0, g.edge_index[1], probs)
    torch.testing.assert_close(per_node, torch.ones(n))


def test_batched_outputs_equal_outputs_of_each_graph_alone():
    graphs = [graph(4, 0), graph(0, 1), graph(5, 2)]
    m = model()
    batched = m(Graph.collate(graphs), steps=3)
    node_off, edge_off = 0, 0
    for i, g in enumerate(graphs):
        alone = m(g, steps=3)
        for k, spec in SPEC.items():
            if spec.stage != "output":
                continue
            loc = spec.field_location
            lo = {"node": node_off, "edge": edge_off, "graph": i}[loc]
            torch.testing.assert_close(batched[k][lo : lo + g.count(loc)], alone[k], msg=k)
        node_off, edge_off = node_off + g.num_nodes, edge_off + g.num_edges


def test_teacher_forcing_reads_hint_fields_and_free_running_reads_only_step_zero():
    m, g = model(encode_hints=True), graph(5, 3, steps=4)
    changed_later = g.with_fields(d_h=Field(torch.cat([g["d_h"][:1], g["d_h"][1:] + 5.0]), "node", time=True))
    changed_first = g.with_fields(d_h=Field(torch.cat([g["d_h"][:1] + 5.0, g["d_h"][1:]]), "node", time=True))
    free, forced = m(g, steps=3), m(g, steps=3, teacher_forcing=True)
    torch.testing.assert_close(m(changed_later, steps=3)["d"], free["d"])
    assert not torch.allclose(m(changed_later, steps=3, teacher_forcing=True)["d"], forced["d"])
    assert not torch.allclose(m(changed_first, steps=3)["d"], free["d"])


def test_encode_hints_without_hint_fields_raises_naming_the_field():
    m = model(encode_hints=True)
    bare = Graph(x=torch.randn(2, 2), edge_index=torch.tensor([[0], [1]]), edge_attr=torch.rand(1, 1))
    with pytest.raises(ValueError, match="'pi_h'"):
        m(bare, steps=1)


def test_state_dict_round_trip_with_weights_only_keeps_outputs_and_tied_weights():
    m, g = model(), graph(4, 5)
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    buf.seek(0)
    fresh = HookedGNN("mpnn", d_hidden=8, node_in=2, edge_in=1, spec=SPEC, max_steps=4)
    fresh.load_state_dict(torch.load(buf, weights_only=True))
    assert fresh.layers[3].message_mlp.lin_in.weight is fresh.layers[0].message_mlp.lin_in.weight
    torch.testing.assert_close(fresh(g)["pi"], m(g)["pi"])


def test_unknown_processor_name_suggests_close_names():
    with pytest.raises(KeyError, match="did you mean"):
        HookedGNN("mpn", d_hidden=4, node_in=1)


def test_input_width_mismatch_names_the_input():
    with pytest.raises(ValueError, match="graph.edge_attr has 1 features but the model was built with 0"):
        HookedGNN("mpnn", d_hidden=4, node_in=2)(graph(3, 0))


def test_resuming_at_a_round_from_its_entering_state_equals_the_full_run():
    m, g = model(), graph(5, 6)
    full, cache = m.run_with_cache(g, steps=4)
    for t in (1, 3, 4):
        resumed = m(g, steps=4, start=t, state=cache["update", t - 1])
        torch.testing.assert_close(resumed["pi"], full["pi"])
        assert resumed.hints.get("d_h", torch.zeros(0)).shape[0] == 4 - t
    assert m.round_of("layers.2.message_mlp.hook_post") == 2 and m.round_of("hook_node_embed") is None
    with pytest.raises(ValueError, match=r"needs state \[N=5, d=8\]"):
        m(g, steps=4, start=2)


@pytest.mark.parametrize("spec", [FeatureSpec("output", "node", "pointer"),
                                  FeatureSpec("output", "edge", "categorical", dim=3)], ids=["pointer", "edge_categorical"])
def test_edge_and_pointer_decoders_match_their_formula_edge_by_edge(spec: FeatureSpec) -> None:
    """Pointer: w^T relu(W_s h_u + W_d h_v + W_e e_uv); edge: W_o relu(W_h [h_u, h_v, e_uv]), per edge."""
    from hookgnn.models.heads import Decoder

    torch.manual_seed(0)
    dec = Decoder(spec, 4).double()
    g = graph(5, 3).to(torch.float64)
    h, x, e, pooled = (torch.randn(n, 4, dtype=torch.float64) for n in (5, 5, g.num_edges, 1))
    got = dec(h, x, e, pooled, g)
    lin = lambda layer, v: layer.weight @ v + layer.bias  # noqa: E731
    for k, (u, v) in enumerate(g.edge_index.t().tolist()):
        if spec.type == "pointer":
            want = lin(dec.out, torch.relu(lin(dec.src, h[u]) + lin(dec.dst, h[v]) + lin(dec.edge, e[k])))[0]
        else:
            want = lin(dec.out, torch.relu(lin(dec.hidden, torch.cat([h[u], h[v], e[k]]))))
        torch.testing.assert_close(got[k], want)
