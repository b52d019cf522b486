"""JUnit XML: one test case per target, so CI systems list each target as a test.

A missed target is a ``<failure>``, a target the trace cannot measure (no services, no memory
data) is ``<skipped>``. Written with ``xml.etree`` so that names from traces are escaped properly.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any


def _value(target: dict[str, Any]) -> str:
    unit = f" {target['unit']}" if target["unit"] else ""
    return f"{target['measured']:.3f}{unit} (limit {target['limit']:g}{unit}, {target['statistic']})"


def render(document: dict[str, Any]) -> str:
    targets = document["targets"]
    failures = sum(1 for t in targets if t["status"] == "fail")
    skipped = sum(1 for t in targets if t["status"] == "not measured")
    service = document["representative"]["service"] or "unknown service"
    suite_name = f"otel-coldstart targets ({service})"
    suites = ET.Element("testsuites", name="otel-coldstart", tests=str(len(targets)), failures=str(failures))
    suite = ET.SubElement(
        suites,
        "testsuite",
        name=suite_name,
        tests=str(len(targets)),
        failures=str(failures),
        errors="0",
        skipped=str(skipped),
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("source", document["source"]["description"]),
        ("format", document["source"]["format"]),
        ("traces", str(document["source"]["trace_count"])),
        ("statistic", document["statistic"]),
        ("targets_origin", document["targets_origin"]),
        *(("note", note) for note in document.get("notes", ())),
    ):
        ET.SubElement(properties, "property", name=name, value=value)
    for target in targets:
        case = ET.SubElement(
            suite, "testcase", classname="otel-coldstart.targets", name=target["key"], time="0"
        )
        if target["status"] == "not measured":
            ET.SubElement(case, "skipped", message=f"{target['label']}: not measured by this trace")
        elif target["status"] == "fail":
            failure = ET.SubElement(
                case, "failure", message=f"{target['label']} {_value(target)}", type="TargetMissed"
            )
            detail = f"values per cold start: {target['values']}"
            if target["detail"]:
                detail = f"{target['detail']}\n{detail}"
            failure.text = detail
        else:
            out = ET.SubElement(case, "system-out")
            out.text = f"{target['label']} {_value(target)}"
    advice = [a["message"] for a in document["recommendations"]]
    if advice:
        ET.SubElement(suite, "system-out").text = "Recommendations:\n" + "\n".join(f"- {a}" for a in advice)
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
