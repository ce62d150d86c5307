"""The benchmark suite's command on a tiny run: real sections, the JSON's shape, the doc's tables.

No timing is asserted: the figures depend on the machine; only that they exist and are sane.
"""

from __future__ import annotations

import json
import math

import pytest

from bench.report import BEGIN, END, ReportError, update_doc
from cli.main import main

SECTIONS = ["publish", "decode"]


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("bench")
    code = main(["bench", "--quick", "--only", ",".join(SECTIONS), "--out", str(out), "--no-doc"])
    assert code == 0
    return json.loads((out / "bench.json").read_text())


def positive(value: object) -> bool:
    return isinstance(value, float | int) and math.isfinite(value) and value > 0


def test_json_records_machine_weights_and_only_the_sections_asked(quick_report):
    assert quick_report["quick"] is True
    assert sorted(quick_report["sections"]) == sorted(SECTIONS)
    environment = quick_report["environment"]
    assert environment["cpu_count"] >= 1
    assert len(environment["load_average_1m_5m_15m"]) == 3
    assert quick_report["weights"]["source"] in ("shipped", "random")
    assert quick_report["settings"]["person_score_threshold"] == 0.0


def test_publish_section_counts_every_sender(quick_report):
    publish = quick_report["sections"]["publish"]
    assert publish["humans"] == 3 and publish["parts_per_human"] == 10
    assert publish["payload_bytes"] > 1000
    for key in ("raw_per_s", "publisher_per_s", "sink_per_s", "sink_over_raw"):
        assert positive(publish[key]), key


def test_decode_section_compares_each_file_with_gst_launch(quick_report):
    rows = quick_report["sections"]["decode"]["rows"]
    assert rows, "at least the synthetic video"
    for row in rows:
        assert row["frames"] > 0 and row["width"] > 0 and row["height"] > 0
        for key in ("gst_launch_fps", "source_bin_fps", "iterate_frames_fps"):
            assert positive(row[key]), (row["video"], key)
    assert any(row["frames"] == 50 and row["width"] == 640 for row in rows)


def test_targets_not_run_are_marked_unknown_and_the_measured_one_is_judged(quick_report):
    by_name = {target["name"]: target for target in quick_report["targets"]}
    publishing = [t for name, t in by_name.items() if name.startswith("event publishing")]
    assert len(publishing) == 2
    for publish in publishing:
        assert publish["met"] == (publish["measured"] >= 0.8)
    glue = next(t for name, t in by_name.items() if name.startswith("glue overhead"))
    assert glue["measured"] is None and glue["met"] is None


def test_doc_tables_are_replaced_between_the_markers_only(quick_report, tmp_path):
    doc = tmp_path / "PERFORMANCE.md"
    doc.write_text(f"# intro\n\n{BEGIN}\nold tables\n{END}\n\n## GPU arithmetic\n")
    update_doc(doc, quick_report)
    text = doc.read_text()
    assert text.startswith("# intro\n") and text.endswith("## GPU arithmetic\n")
    assert "old tables" not in text
    assert "### Event publishing" in text and "### Decode only" in text
    doc.write_text("no markers\n")
    with pytest.raises(ReportError, match="markers"):
        update_doc(doc, quick_report)


def test_unknown_section_is_a_one_line_error(capsys, tmp_path):
    assert main(["bench", "--only", "publish,warp", "--out", str(tmp_path)]) == 2
    assert "unknown sections ['warp']" in capsys.readouterr().err
