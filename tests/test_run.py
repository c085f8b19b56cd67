"""The main job `symntk run` as a user runs it: default digits data, user .npz data, bad files."""
import json

import numpy as np

from symntk.cli import main


def test_run_on_default_digits_writes_the_report(tmp_path):
    out = tmp_path / "out"
    assert main(["run", "--activations", "relu(x)", "--formula", "0.5*x + erf(x)", "--depth", "1",
                 "--out", str(out)]) == 0
    for name in ("report.md", "results.json", "learning_curves.png", "kernels.png"):
        assert (out / name).stat().st_size > 0
    rows = json.loads((out / "results.json").read_text())["results"]
    assert [r["activation"] for r in rows] == ["relu(x)", "0.5*x + erf(x)"]
    # digits 3 vs 8 is easy for a kernel machine: better than 90 % from 200 examples
    assert all(r["nngp_acc"] > 0.9 and r["ntk_acc"] > 0.9 for r in rows)


def test_run_on_user_npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    y = np.sign(x[:, 0])
    path = tmp_path / "d.npz"
    np.savez(path, x_train=x[:30], y_train=y[:30], x_test=x[30:], y_test=y[30:])
    assert main(["run", "--data", str(path), "--activations", "erf(x)", "--depth", "2", "--out", str(tmp_path / "o")]) == 0


def test_malformed_npz_gets_a_clear_error(tmp_path, capsys):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((3, 2)), y_train=np.zeros(3))
    assert main(["run", "--data", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "lacks the arrays ['x_test', 'y_test']" in capsys.readouterr().err
    np.savez(path, x_train=np.zeros((3, 2)), y_train=np.zeros(3), x_test=np.zeros((2, 3)), y_test=np.zeros(2))
    assert main(["run", "--data", str(path), "--out", str(tmp_path / "o")]) == 2
    assert "features" in capsys.readouterr().err
    (tmp_path / "junk.npz").write_text("not an npz")
    assert main(["run", "--data", str(tmp_path / "junk.npz"), "--out", str(tmp_path / "o")]) == 2
    assert "not a readable .npz" in capsys.readouterr().err
