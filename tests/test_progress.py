"""The one progress bar class behind the commands' bars and the Python API's."""

from __future__ import annotations

from types import SimpleNamespace

from geogan.progress import Bar


def test_a_bar_is_drawn_on_first_report_starts_over_per_scene_and_shows_losses(capsys):
    with Bar("translate", "win") as bar:
        assert bar._bar is None  # nothing drawn before work reports
        bar(3, 4)
        bar(4, 4)
        bar(1, 6)  # the next scene of a batch
        assert (bar._bar.n, bar._bar.total) == (1, 6)
    with Bar("fit", "step") as steps:
        steps.steps(SimpleNamespace(step=20, total=50, start=10, losses={"g_l1": 0.12345}))
        assert steps._bar.n == 20
    err = capsys.readouterr().err
    assert "translate" in err and "fit" in err and "g_l1=0.123" in err


def test_a_disabled_or_terminal_only_bar_draws_nothing_off_a_terminal(capsys):
    quiet = [True]
    with Bar("a", "it", enabled=lambda: not quiet[0]) as first, \
            Bar("b", "it", terminal_only=True) as second:
        first(1, 2)
        second(1, 2)
        assert first._bar is None
        quiet[0] = False
        first(2, 2)
    err = capsys.readouterr().err
    assert "a: " in err and "b: " not in err  # capsys is not a terminal
