#!/usr/bin/env bash
# Writes charts/skydeck/charts/NAME-VERSION.tgz for each subchart in
# charts/skydeck/Chart.yaml: a placeholder of the same name and version.
#
# Helm refuses to install or template a chart when a dependency listed in
# Chart.yaml is missing from charts/, even a disabled one. With these
# placeholders committed, a release with ingress-nginx, prometheus and
# grafana all disabled installs from a plain clone, with no network (an
# air-gapped install). An enabled one renders the placeholder, which fails
# and says to run `helm dependency build charts/skydeck`; that download
# writes the real chart over the placeholder (same file name).
#
# Usage: scripts/chart-placeholders.sh   (after changing a dependency in
# Chart.yaml). The archives are byte-for-byte reproducible.
set -euo pipefail
cd "$(dirname "$0")/../charts/skydeck"
python3 - <<'PY'
import glob, gzip, io, os, re, tarfile

# Chart.yaml's dependencies, read without PyYAML: `- name:` then `version:`.
deps, current = [], None
for line in open("Chart.yaml"):
    m = re.match(r"\s*-\s*name:\s*(\S+)", line)
    if m:
        current = {"name": m.group(1)}
        deps.append(current)
        continue
    m = re.match(r"\s*(version|repository):\s*(\S+)", line)
    if m and current is not None:
        current[m.group(1)] = m.group(2)

os.makedirs("charts", exist_ok=True)
for old in glob.glob("charts/*.tgz"):
    with tarfile.open(old) as t:
        if any(n.endswith("/templates/placeholder.yaml") for n in t.getnames()):
            os.remove(old)

for d in deps:
    name, version, repo = d["name"], d["version"], d["repository"]
    chart_yaml = (
        "apiVersion: v2\n"
        f"name: {name}\n"
        f"version: {version}\n"
        f"description: Placeholder for the {name} chart {version} ({repo}), so that\n"
        f"  Skydeck installs without it while {name}.enabled is false.\n"
        "  `helm dependency build charts/skydeck` replaces it with the real chart.\n"
    )
    template = (
        "{{- fail \"%s.enabled=true needs the %s chart %s, and charts/skydeck/charts/ "
        "holds only a placeholder for it: run `helm dependency build charts/skydeck` "
        "where %s is reachable (or copy %s-%s.tgz into charts/skydeck/charts/), "
        "or set %s.enabled=false.\" -}}\n"
    ) % (name, name, version, repo, name, version, name)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for path, text in ((f"{name}/Chart.yaml", chart_yaml),
                           (f"{name}/templates/placeholder.yaml", template)):
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            t.addfile(info, io.BytesIO(data))
    out = f"charts/{name}-{version}.tgz"
    with open(out, "wb") as f, gzip.GzipFile(filename="", fileobj=f, mode="wb", mtime=0) as z:
        z.write(raw.getvalue())
    print(out)
PY
