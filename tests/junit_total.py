"""Print the closing lines of the test command from the JUnit files of its phases:
one count for the whole run, and each skip or failure with its reason.

    python -m tests.junit_total PHASE.xml [PHASE.xml ...]
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path


def tally(paths: list[Path]) -> tuple[Counter[str], list[str]]:
    counts: Counter[str] = Counter()
    notes: list[str] = []
    for path in paths:
        if not path.is_file():
            counts["failed"] += 1
            notes.append(f"FAILED {path.name}: the phase wrote no results (it did not run)")
            continue
        for case in ET.parse(path).iter("testcase"):
            name = f"{case.get('classname', '')}::{case.get('name', '')}"
            outcome = "passed"
            for child in case:
                if child.tag in {"failure", "error"}:
                    outcome = "failed"
                elif child.tag == "skipped" and outcome == "passed":
                    outcome = "skipped"
                if outcome != "passed":
                    message = (child.get("message") or "").splitlines()[:1]
                    notes.append(f"{outcome.upper()} {name}: {' '.join(message)}")
                    break
            counts[outcome] += 1
    return counts, notes


def main(argv: list[str]) -> int:
    counts, notes = tally([Path(a) for a in argv])
    for note in notes:
        print(note)
    print(f"total: {counts['passed']} passed, {counts['failed']} failed, "
          f"{counts['skipped']} skipped")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
