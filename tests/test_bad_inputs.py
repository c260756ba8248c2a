"""Every case of the bad-input catalogue (tests/catalogue.py, docs/reliability.md): exit status 2,
one line that names the problem, no traceback, nothing executed from a file."""
import pytest

from ssavae.cli import main

from catalogue import CASES


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_with_one_line(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a pickle payload would write its file
    argv = case.argv(tmp_path)
    capsys.readouterr()  # what building the case printed
    rc = main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if ": error: " in line]
    assert rc == 2, err[-2000:]
    assert len(errors) == 1 and errors[0].startswith("ssavae "), err[-2000:]
    assert case.expect in errors[0]
    assert "Traceback" not in err
    assert not (tmp_path / "PWNED").exists()  # a payload never runs


def test_catalogue_is_large_and_ids_are_unique():
    assert len(CASES) >= 40 and len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(tmp_path, capsys, where):
    argv = ["train", "--model", "vae", "--data", f"npz:{tmp_path / 'nope.npz'}", "--out", str(tmp_path / "run")]
    assert main(["--debug", *argv] if where == "before" else [*argv, "--debug"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "does not exist" in err
