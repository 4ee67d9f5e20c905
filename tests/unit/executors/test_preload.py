from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from mlops_ops.executors.preload import DEFAULT_MODULES, ENV_SETTING, configured_modules, preload


def test_the_setting_is_a_comma_list_in_order_without_blanks_or_repeats() -> None:
    assert configured_modules(" pandas, ,mlflow,pandas ,") == ("pandas", "mlflow")
    assert configured_modules("") == ()


def test_the_environment_wins_and_no_setting_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_SETTING, "json")
    assert configured_modules() == ("json",)
    monkeypatch.delenv(ENV_SETTING)
    assert configured_modules() == DEFAULT_MODULES
    assert "torch" not in DEFAULT_MODULES


def test_absent_and_broken_modules_are_skipped_and_the_rest_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "preload_fine.py").write_text("VALUE = 1\n")
    (tmp_path / "preload_broken.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "preload_needs.py").write_text("import preload_not_there_either\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with caplog.at_level(logging.DEBUG, logger="mlops_ops.executors.preload"):
        took = preload(["preload_absent", "preload_broken", "preload_needs", "preload_fine"])
    assert list(took) == ["preload_fine"] and took["preload_fine"] >= 0
    assert "preload_fine" in sys.modules
    messages = caplog.text
    assert "preload_absent is not installed" in messages
    assert "importing preload_broken failed (RuntimeError: boom at import)" in messages
    assert "preload_needs needs preload_not_there_either" in messages
