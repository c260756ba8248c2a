"""SIGKILL at random moments, then ``--resume`` with the original command line: the finished run's
weights equal an uninterrupted run's, bit for bit (bench/kill_resume.py: 1 run here, 10 under -m slow)."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from kill_resume import run_kill_test  # noqa: E402

pytestmark = pytest.mark.precision  # exact resume in the precision auto picks


def _check(results):
    assert sum(r["kills"] for r in results) >= 1  # the runs were interrupted
    assert all(r["bitwise_equal"] for r in results), results
    assert all(r["kills"] >= 1 and r["temporaries_left"] == 0 for r in results), results


def test_killed_runs_resume_to_the_uninterrupted_weights(tmp_path):
    _check(run_kill_test(1, seed=1, root=tmp_path))


@pytest.mark.slow
def test_ten_killed_runs_resume_to_the_uninterrupted_weights(tmp_path):
    results = run_kill_test(10, seed=0, root=tmp_path)
    _check(results)
    assert sum(r["inside_a_write"] for r in results) >= 1  # some kills landed inside a checkpoint write
