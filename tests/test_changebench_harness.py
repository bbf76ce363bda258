"""bench/changebench.py without the system: the case loader and the scoring (pure, fast)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

HARNESS = Path(__file__).resolve().parents[1] / "bench" / "changebench.py"


def _load_harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("changebench", HARNESS)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


cb = _load_harness()


def write_case(cases: Path, case_id: str, category: str, expect: list[Any], **extra: Any) -> Path:
    """A case folder with case.json and one tiny page per label."""
    folder = cases / case_id
    folder.mkdir(parents=True)
    versions = [f"v{i:03d}.html" for i in range(len(expect))]
    for i, name in enumerate(versions):
        (folder / name).write_text(f"<html><body><p>version {i}</p></body></html>")
    case = {
        "id": case_id,
        "query": f"Tell me when {case_id} changes.",
        "category": category,
        "source": "synthetic",
        "versions": versions,
        "expect": expect,
        "why": [None] + ["synthetic"] * (len(expect) - 1),
        **extra,
    }
    (folder / "case.json").write_text(json.dumps(case))
    return folder


@pytest.fixture
def split(tmp_path: Path) -> Path:
    """A 2-case split: one release case with an alert, one noise case."""
    write_case(tmp_path / "cases", "t-release", "release", [None, "no_alert", "alert"])
    write_case(tmp_path / "cases", "t-noise", "noise", [None, "no_alert", "no_alert"])
    return tmp_path


def result(case_id: str, category: str, expected: list[Any], predicted: list[Any]) -> Any:
    return cb.CaseResult(case_id, category, expected, predicted)


def test_loader_reads_a_split_or_its_cases_folder(split: Path) -> None:
    cases = cb.load_cases(split)
    assert [c.id for c in cases] == ["t-noise", "t-release"]
    release = cases[1]
    assert release.category == "release"
    assert release.expect == (None, "no_alert", "alert")
    assert release.page(2) == b"<html><body><p>version 2</p></body></html>"
    assert [c.id for c in cb.load_cases(split / "cases")] == ["t-noise", "t-release"]
    assert [c.id for c in cb.load_cases(split, only=["t-release"])] == ["t-release"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"expect": [None, "alert", "maybe"]}, "t-bad: expect[2] is 'maybe'"),
        ({"expect": ["alert", "alert", "alert"]}, "t-bad: expect[0] must be null"),
        ({"expect": [None, "alert"]}, "t-bad: 'expect' must be a list as long as 'versions' (3)"),
        ({"id": "other"}, "t-bad: id 'other' does not match its folder name"),
        ({"query": "  "}, "t-bad: 'query' must be a non-empty string"),
        (
            {"versions": ["v000.html", "v001.html", "v009.html"]},
            "version file v009.html is missing",
        ),
    ],
)
def test_loader_rejects_a_malformed_case(split: Path, change: dict[str, Any], message: str) -> None:
    folder = write_case(split / "cases", "t-bad", "release", [None, "no_alert", "alert"])
    case = json.loads((folder / "case.json").read_text())
    (folder / "case.json").write_text(json.dumps({**case, **change}))
    with pytest.raises(cb.CaseError, match=re.escape(message)):
        cb.load_cases(split)


def test_loader_names_missing_fields_unknown_cases_and_broken_json(split: Path) -> None:
    folder = write_case(split / "cases", "t-bad", "release", [None, "alert"])
    (folder / "case.json").write_text(json.dumps({"id": "t-bad", "query": "q"}))
    with pytest.raises(
        cb.CaseError, match=r"t-bad: case.json lacks field\(s\) category, versions, expect"
    ):
        cb.load_cases(split)
    (folder / "case.json").write_text("{not json")
    with pytest.raises(cb.CaseError, match=re.escape("t-bad: case.json is not readable JSON")):
        cb.load_cases(split)
    with pytest.raises(cb.CaseError, match="no case\\(s\\) named t-missing"):
        cb.load_cases(split, only=["t-release", "t-missing"])
    with pytest.raises(cb.CaseError, match="no such directory"):
        cb.load_cases(split / "nowhere")


def test_metrics_from_synthetic_predictions() -> None:
    results = [
        # TP, FN, FP, TN
        result(
            "a",
            "release",
            [None, "alert", "alert", "no_alert", "no_alert"],
            [None, "alert", "no_alert", "alert", "no_alert"],
        ),
        # TN, FP
        result("b", "noise", [None, "no_alert", "no_alert"], [None, "no_alert", "alert"]),
    ]
    results[0].checks = [cb.CheckRecord(str(i), "succeeded", "changed", (), s)
                         for i, s in enumerate([9.0, 1.0, 2.0, 3.0, 4.0])]  # fmt: skip
    report = cb.score(results)
    total = report["total"]
    assert {k: total[k] for k in ("steps", "tp", "fp", "fn", "tn")} == {
        "steps": 6, "tp": 1, "fp": 2, "fn": 1, "tn": 2}  # fmt: skip
    assert total["precision"] == pytest.approx(1 / 3, abs=1e-4)
    assert total["recall"] == 0.5
    assert total["f1"] == pytest.approx(0.4, abs=1e-4)  # 2 * 1/3 * 1/2 / (1/3 + 1/2)
    assert total["false_alert_rate"] == 0.5  # 2 FP of 4 no_alert steps
    assert total["seconds_per_check"] == 2.5  # scored checks only; the 9 s baseline is not
    assert set(report["categories"]) == {"noise", "release"}
    assert report["categories"]["release"]["f1"] == 0.5
    noise = report["categories"]["noise"]
    assert (noise["precision"], noise["recall"], noise["f1"]) == (0.0, 0.0, 0.0)
    assert noise["false_alert_rate"] == 0.5
    assert report["cases"][1] == {
        "id": "b", "expected": [None, "no_alert", "no_alert"], "predicted": [None, "no_alert", "alert"],
        "check_ids": []}  # fmt: skip
    json.dumps(report)  # the report is plain JSON


def test_metrics_zero_divisions_are_zero() -> None:
    silent = cb.score([result("n", "noise", [None, "no_alert"], [None, "no_alert"])])["total"]
    assert silent == {"steps": 1, "tp": 0, "fp": 0, "fn": 0, "tn": 1, "precision": 0.0,
                      "recall": 0.0, "f1": 0.0, "false_alert_rate": 0.0, "seconds_per_check": 0.0}  # fmt: skip
    missed = cb.score([result("r", "release", [None, "alert"], [None, "no_alert"])])["total"]
    assert (missed["precision"], missed["recall"], missed["f1"]) == (0.0, 0.0, 0.0)
    assert missed["false_alert_rate"] == 0.0  # no no_alert steps at all
    empty = cb.metrics(cb.Confusion())
    assert empty["steps"] == 0 and empty["f1"] == 0.0
    perfect = cb.score([result("p", "release", [None, "alert", "no_alert"],
                               [None, "alert", "no_alert"])])["total"]  # fmt: skip
    assert (perfect["precision"], perfect["recall"], perfect["f1"]) == (1.0, 1.0, 1.0)


def test_scoring_rejects_mismatched_predictions() -> None:
    with pytest.raises(ValueError, match="3 labels but 2 predictions"):
        cb.Confusion().add([None, "alert", "alert"], [None, "alert"])
    with pytest.raises(ValueError, match="must be 'alert' or 'no_alert'"):
        cb.Confusion().add([None, "alert"], [None, None])


def test_table_marks_undefined_metrics(split: Path) -> None:
    report = cb.score([result("n", "noise", [None, "no_alert"], [None, "no_alert"])])
    table = cb.format_table("== system", report)
    noise_row = table.splitlines()[2].split()
    assert noise_row[:6] == ["noise", "1", "0", "0", "0", "1"]
    assert noise_row[6:9] == ["-", "-", "-"] and noise_row[9] == "0.000"
