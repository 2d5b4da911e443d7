"""Make asv's published report open without a network: ``python -m benchmarks.offline_html``.

asv 0.6 writes an ``index.html`` that loads jQuery, flot, bootstrap, stupidtable and md5 from
public CDNs, so on an offline or firewalled runner (and on this project's machines) the page
shows only asv's "dependencies failed to load" error. asv 0.5.1 shipped the same libraries
(same versions; bootstrap 3.1.0 for 3.1.1) in its own source tree; ``benchmarks/asv_vendor/``
holds those files unchanged (each keeps its MIT licence header). This script copies them next
to the report and points every CDN tag at the local copy. A CDN address it does not know
(a newer asv) is an error naming it, exit 2, so the report never half-loads silently.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

from harness.output.records import write_bytes_replacing

VENDOR = Path(__file__).resolve().parent / "asv_vendor"
# CDN file name (the last path component of the address) -> vendored file
LOCAL = {
    "jquery-3.3.1.min.js": "jquery-3.3.1.min.js",
    "jquery.flot.min.js": "jquery.flot-0.8.3.min.js",
    "jquery.flot.time.min.js": "jquery.flot-0.8.3.time.min.js",
    "jquery.flot.selection.min.js": "jquery.flot-0.8.3.selection.min.js",
    "jquery.flot.categories.min.js": "jquery.flot-0.8.3.categories.min.js",
    "jquery.flot.orderBars.js": "jquery.flot.orderBars.js",
    "stupidtable.min.js": "stupidtable.js",
    "md5.min.js": "md5.js",
    "bootstrap.min.js": "bootstrap-3.1.0.min.js",
    "bootstrap.min.css": "bootstrap-3.1.0.min.css",
}
_TAG = re.compile(r'<(script|link)\b[^>]*?\b(src|href)="(https?://[^"]+)"[^>]*>')
_EXTERNAL = ("integrity", "crossorigin", "referrerpolicy")


def localise(html: str) -> str:
    """``html`` with every CDN ``<script src>`` / ``<link href>`` pointing at ``vendor/``;
    raises ``KeyError`` naming an address with no vendored file."""

    def swap(m: re.Match) -> str:
        tag, _, url = m.groups()
        if tag == "link" and "stylesheet" not in m.group(0):
            return m.group(0)  # an ordinary link (asv's home page), not a dependency
        name = url.rsplit("/", 1)[-1]
        if name not in LOCAL:
            raise KeyError(url)
        out = m.group(0).replace(url, f"vendor/{LOCAL[name]}")
        for a in _EXTERNAL:
            out = re.sub(rf'\s{a}="[^"]*"', "", out)
        return out

    return _TAG.sub(swap, html)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html_dir", nargs="?", default="results/asv/html", type=Path)
    args = parser.parse_args(argv)
    index = args.html_dir / "index.html"
    if not index.is_file():
        print(f"{index}: not found (run `asv publish` first)", file=sys.stderr)
        return 2
    try:
        html = localise(index.read_text(encoding="utf-8"))
    except KeyError as exc:
        print(f"{index}: no vendored copy of {exc.args[0]} (benchmarks/offline_html.py, LOCAL)", file=sys.stderr)
        return 2
    (args.html_dir / "vendor").mkdir(exist_ok=True)
    for name in sorted(set(LOCAL.values())):
        shutil.copyfile(VENDOR / name, args.html_dir / "vendor" / name)
    write_bytes_replacing(index, html.encode("utf-8"))
    print(f"{index}: {len(set(LOCAL.values()))} dependencies served from {args.html_dir / 'vendor'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
