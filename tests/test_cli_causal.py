"""``hookgnn causal``: probe and IIA rows per hint and step for a checkpoint; bad arguments named."""

from __future__ import annotations

import json

import pytest

from hookgnn.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("causal") / "bf.pt"
    main(["train", "--task", "bellman_ford", "--steps", "3", "--n", "6", "--p", "0.4", "--d-hidden", "8",
          "--batch-size", "4", "--max-steps", "8", "--eval-graphs", "2", "--no-progress", "--out", str(path)])
    return path


def test_causal_prints_and_writes_a_row_per_hint_and_step(checkpoint, tmp_path, capsys):
    out_json = tmp_path / "rows.json"
    main(["causal", "--checkpoint", str(checkpoint), "--hint", "d_h", "--hint", "msk", "--steps", "2",
          "--pairs", "4", "--n", "6", "--p", "0.4", "--json", str(out_json)])
    assert "iia" in capsys.readouterr().out
    rows = json.loads(out_json.read_text())
    assert [(r["hint"], r["step"]) for r in rows] == [("d_h", 1), ("d_h", 2), ("msk", 1), ("msk", 2)]
    assert all(0.0 <= r["iia"] <= 1.0 and 0.0 <= r["chance"] <= 1.0 for r in rows)


@pytest.mark.parametrize(("argv", "message"), [
    (["--hint", "pi"], "argument --hint pi: not a node hint of bellman_ford"),
    (["--steps", "8"], "argument --steps 8: the model runs 8 rounds"),
])
def test_causal_names_a_bad_argument(checkpoint, capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        main(["causal", "--checkpoint", str(checkpoint), *argv])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_causal_prints_output_iia_equal_to_a_direct_call(checkpoint, tmp_path, capsys):
    from hookgnn.causal import interchange_data, output_iia, random_interventions, task_pairs, whole_state
    from hookgnn.tasks import get_task
    from hookgnn.training import load_checkpoint

    out_json = tmp_path / "rows.json"
    main(["causal", "--checkpoint", str(checkpoint), "--hint", "d_h", "--steps", "2", "--pairs", "4", "--n", "6",
          "--p", "0.4", "--seed", "3", "--json", str(out_json)])
    printed = capsys.readouterr().out.split("output_iia: node by node, per output\n")[1].splitlines()[1:]
    table = {(h, int(s), o): tuple(map(float, v)) for h, s, o, *v in (line.split() for line in printed)}

    # the direct call: the pairs and interventions the command documents (seed, task_pairs' vary, whole state)
    model, task = load_checkpoint(checkpoint).model.eval(), get_task("bellman_ford")
    pairs = task_pairs(task, 4, "erdos_renyi", vary="weights", seed=3, n=6, p=0.4)
    data = interchange_data(task, "d_h", pairs, random_interventions(pairs, [1, 2], seed=3),
                            outputs=["pi", "d", "reach"])
    direct = {name: r.by_step() for name, r in output_iia(model, data, whole_state(model.d_hidden)).items()}
    expected = {("d_h", row["step"], name): (row["iia"], row["ceiling"], row["chance"])
                for name, rows in direct.items() for row in rows}
    assert set(table) == set(expected)
    for key, got in table.items():
        assert got == pytest.approx(expected[key], abs=5e-4, nan_ok=True)  # printed to 3 decimals
    rows = json.loads(out_json.read_text())
    for r in rows:
        for name, o in r["output_iia"].items():
            assert (o["iia"], o["ceiling"], o["chance"]) == pytest.approx(expected[("d_h", r["step"], name)],
                                                                          rel=1e-12, nan_ok=True)
