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
