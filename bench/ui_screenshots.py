"""bench/ui_screenshots.py: a PNG of every dashboard page, for docs/ui.md.

    .venv/bin/python bench/ui_screenshots.py [--out docs/ui] [--demo DIR] [--width 1280 --height 900]

Builds a demo home (`funnelops demo`, or reuses --demo DIR when it holds one), starts a real
`funnelops ui` on it, and saves, in headless Chromium (Debian's `chromium`, or FUNNELOPS_CHROMIUM,
driven by Playwright), one screenshot per page: overview.png (/), runs.png (/runs), run.png
(/runs/<the newest run>), schedulers.png, lineage.png and plan.png. Each page is shot once the
network is idle, at the viewport size (not the full page, so every picture has the same frame).
Prints one line per file written; a page that does not answer 200 is named and not shot, and
the script then exits 1 (after shooting the others).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

if __name__ == "__main__":  # run as a script: import bench and funnelops from this checkout
    sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "src")]

from bench.ui_server import CHROMIUM_ARGS, REPO, build_demo, find_chromium, start_ui, stop_ui

PAGES = (("overview", "/"), ("runs", "/runs"), ("run", "/runs/{run}"), ("schedulers", "/schedulers"),
         ("lineage", "/lineage"), ("plan", "/plan"))


def shoot(demo: Path, out: Path, width: int = 1280, height: int = 900) -> list[Path]:
    """The screenshots of every page of the dashboard over `demo` (a folder `funnelops demo` made)."""
    from playwright.sync_api import sync_playwright

    chromium = find_chromium()
    if chromium is None:
        raise SystemExit("no Chromium: install Debian's `chromium` or set FUNNELOPS_CHROMIUM")
    out.mkdir(parents=True, exist_ok=True)
    server = start_ui(demo)
    written: list[Path] = []
    try:
        status, runs = server.get("/api/runs?limit=1")
        newest = str(runs[0]["id"]) if status == 200 and runs else "1"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": width, "height": height})
            for name, path in PAGES:
                resp = page.goto(server.url + path.format(run=newest), wait_until="networkidle")
                if resp is None or resp.status != 200:
                    print(f"{path}: HTTP {resp.status if resp else 'no answer'}, not shot", file=sys.stderr)
                    continue
                target = out / f"{name}.png"
                page.screenshot(path=str(target))
                written.append(target)
                print(target)
            browser.close()
    finally:
        stop_ui(server)
    missing = len(PAGES) - len(written)
    if missing:
        raise SystemExit(f"{missing} page(s) did not answer 200; {len(written)} screenshot(s) written")
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "ui", help="the folder for the PNG files")
    ap.add_argument("--demo", type=Path, help="a folder `funnelops demo` made (default: a new one, removed after)")
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=900)
    args = ap.parse_args(argv)
    if args.demo is not None:
        if not (args.demo / "funnelops.toml").is_file():
            build_demo(args.demo)
        shoot(args.demo, args.out, args.width, args.height)
        return 0
    with tempfile.TemporaryDirectory(prefix="funnelops-shots-") as tmp:
        shoot(build_demo(Path(tmp) / "demo"), args.out, args.width, args.height)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
