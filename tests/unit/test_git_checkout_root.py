"""Where the gate looks for .git: bounded by Argo CD's app path when it is known."""

from __future__ import annotations

from pathlib import Path

from gate.sources.git import find_checkout_root


def _tree(tmp_path: Path) -> Path:
    (tmp_path / "outer" / ".git").mkdir(parents=True)
    app = tmp_path / "outer" / "checkout" / "apps" / "web"
    app.mkdir(parents=True)
    return app


def test_walks_up_without_app_path(tmp_path: Path) -> None:
    app = _tree(tmp_path)
    assert find_checkout_root(app) == (tmp_path / "outer").resolve()


def test_app_path_pins_the_root(tmp_path: Path) -> None:
    app = _tree(tmp_path)
    # The checkout root Argo CD describes (apps/web below it) has no .git: the
    # unrelated repository further up must not be used.
    assert find_checkout_root(app, "apps/web") is None
    (tmp_path / "outer" / "checkout" / ".git").mkdir()
    assert find_checkout_root(app, "apps/web") == (tmp_path / "outer" / "checkout").resolve()
    assert find_checkout_root(app, "./apps/web/") == (tmp_path / "outer" / "checkout").resolve()


def test_app_path_dot_is_the_root(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    assert find_checkout_root(tmp_path, ".") == tmp_path.resolve()
    assert (
        find_checkout_root(tmp_path / "sub", "a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s/t/u/v") is None
    )
