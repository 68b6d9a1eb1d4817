"""CI step: pip-audit over the project's virtualenv; fail on a known vulnerability not waived.

Waivers: .ci/pip-audit-waivers.txt, one id a line with its reason.  pip-audit asks the
package index for each installed version's vulnerabilities; an index that does not serve
that data (a mirror) makes pip-audit skip the package.  Skipped packages are listed and
counted loudly, but do not fail the run: only a reported vulnerability does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV_BIN = HERE.parent / ".venv" / "bin"


def waivers() -> list[str]:
    ids = []
    for line in (HERE / "pip-audit-waivers.txt").read_text(encoding="utf-8").splitlines():
        vuln = line.split("#", 1)[0].strip()
        if vuln:
            ids.append(vuln)
    return ids


def main() -> int:
    cmd = [str(VENV_BIN / "pip-audit"), "--skip-editable", "--progress-spinner", "off", "-f", "json"]
    for vuln in waivers():
        cmd += ["--ignore-vuln", vuln]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)  # noqa: S603 - our own venv
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        print(f"pip-audit did not run (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        print("WARNING: dependency audit NOT done")
        return 0
    deps = report.get("dependencies", [])
    found = [(d["name"], d["version"], v) for d in deps for v in d.get("vulns", [])]
    skipped = [d for d in deps if d.get("skip_reason")]
    for name, version, v in found:
        fix = ", ".join(v.get("fix_versions") or []) or "no fix yet"
        print(f"VULNERABLE {name} {version}: {v['id']} (fixed in: {fix}) {v.get('description', '')[:200]}")
    audited = len(deps) - len(skipped)
    print(f"dependency audit: {audited} of {len(deps)} packages audited, {len(found)} known vulnerabilities "
          f"not waived, {len(waivers())} waived")  # fmt: skip
    if skipped:
        print(f"WARNING: {len(skipped)} packages could not be audited (the package index gave no vulnerability "
              f"data for them), e.g. {skipped[0]['skip_reason']}")  # fmt: skip
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
