"""The shipped JSON Schemas describe the version they validate, in their title and description."""

from __future__ import annotations

import re

import pytest

from kvmgen.gate.baseline import baseline_schema
from kvmgen.gate.check import CHECK_VERSION, check_schema
from kvmgen.report.document import REPORT_VERSION
from kvmgen.report.json_report import schema


@pytest.mark.parametrize(
    ("document", "key", "version"),
    [
        (schema(), "kvmgen_report", REPORT_VERSION),
        (check_schema(), "kvmgen_check", CHECK_VERSION),
    ],
)
def test_title_description_and_const_name_one_version(document, key, version):
    assert document["properties"][key]["const"] == version
    assert document["title"].endswith(f"version {version}")
    named = {int(v) for v in re.findall(r"[Vv]ersion (\d+)", document["description"])}
    assert named == {version}
    assert f"{key}: {version}" in document["description"]


def test_the_baseline_schema_embeds_the_report_description():
    report = baseline_schema()["$defs"]["report"]
    assert f"version {REPORT_VERSION}" in report["description"]
