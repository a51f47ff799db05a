"""The model card is the team's template, rendered in Jinja's sandbox under bounds (#22, class 8):
a loop in a loop, a huge string, a huge range or power, or a card rendering megabytes is one
line naming the card, within seconds, never a hung `mlops evidence`."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from mlops_gitops.core.errors import MlopsError
from mlops_gitops.evidence import render


@pytest.mark.parametrize(
    ("template", "said"),
    [
        (
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            "still rendering after 2 s",
        ),
        ("{{ 'x' * 10**9 }}", "SecurityError: a value of over"),
        ("{{ range(10**9) | list }}", "OverflowError: Range too big"),
        ("{% for a in range(100000) %}{{ 'y' * 100 }}{% endfor %}", "renders over 1048576 bytes"),
        ("{{ 2 ** 10000000 }}", "SecurityError: a power of 10000000"),
    ],
)
def test_a_card_template_is_rendered_under_bounds(
    template: str, said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render, "CARD_SECONDS", 2.0)
    (tmp_path / "models/m").mkdir(parents=True)
    (tmp_path / "models/m/card.md").write_text(template)
    started = time.monotonic()
    with pytest.raises(MlopsError) as refused:
        render.render_card(SimpleNamespace(root=tmp_path), "m", {"name": "n"})  # type: ignore[arg-type]
    assert str(refused.value).startswith("models/m/card.md: ") and said in str(refused.value)
    assert "\n" not in str(refused.value) and time.monotonic() - started < 10


def test_a_card_renders_and_the_timer_is_put_back(tmp_path: Path) -> None:
    import signal

    (tmp_path / "models/m").mkdir(parents=True)
    (tmp_path / "models/m/card.md").write_text("# {{ name }}\n{% for i in range(3) %}{{ i }}{% endfor %}\n")
    before = signal.getsignal(signal.SIGALRM)
    text = render.render_card(SimpleNamespace(root=tmp_path), "m", {"name": "churn"})  # type: ignore[arg-type]
    assert text == "# churn\n012\n"
    assert signal.getsignal(signal.SIGALRM) == before and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
