"""A screenshot of the inversion app in a real JupyterLab (headless Chromium), for the README.

    .venv/bin/python bench/screenshot_inversion.py --out docs/figures/inversion_app.png

Opens ``notebooks/04_invert_permeability.ipynb`` (the shipped surrogate by default, 64 x 64, a
fresh scenario of seed 9001), runs all its cells, presses Run in the app at the end (three
monitoring wells logged at 200/400/600 days and full-field snapshots at 200 and 400 days),
then "Verify with simulator", and saves the app as ``--out``. Uses the browser harness of the
tests (``tests/lab_browser.py``): Chromium from the system, everything offline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import papermill

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lab_browser import checked_page, jupyter_lab, open_and_run_all  # noqa: E402

NOTEBOOK = "04_invert_permeability.ipynb"
TIMEOUT_MS = 300_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="default", help='a `ccs-fno train` run directory, or "default"')
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures" / "inversion_app.png"))
    args = parser.parse_args(argv)
    run_dir = args.run_dir if args.run_dir == "default" else str(Path(args.run_dir).resolve())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lab"
        root.mkdir()
        papermill.execute_notebook(
            ROOT / "notebooks" / NOTEBOOK,
            root / NOTEBOOK,
            parameters={
                "run_dir": run_dir,
                "iterations": args.iterations,
                "export": str(Path(tmp) / "r.nc"),
                "figures_dir": str(Path(tmp) / "figures"),
            },
            prepare_only=True,
            progress_bar=False,
        )
        with jupyter_lab(root, Path(tmp) / "state") as lab, checked_page(lab, 1500, 1500, TIMEOUT_MS) as page:
            open_and_run_all(page, lab, NOTEBOOK, timeout_s=TIMEOUT_MS / 1000)
            app = page.locator(".jp-OutputArea-output", has=page.locator("button", has_text="Verify with"))
            app.locator(".bk-Canvas").nth(7).wait_for()
            snapshots = app.locator(".widget-text", has_text="snapshots").locator("input")
            snapshots.fill("200, 400")
            snapshots.press("Enter")
            app.locator("button", has_text="Run").first.click()
            app.locator(".ccs-banner", has_text="completed: chi2/N").wait_for()
            app.locator("button", has_text="Verify with simulator").click()
            app.locator(".ccs-banner", has_text="simulator-confirmed").wait_for()
            page.wait_for_timeout(1500)  # let every canvas repaint
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            app.screenshot(path=out)
        if lab.external_requests:
            print(f"warning: requests left the machine: {lab.external_requests}", file=sys.stderr)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
