"""Screenshot of the UQ app in a real JupyterLab (headless Chromium, 1600 x 1000), for the README.

    .venv/bin/python bench/screenshot_uq.py --run-dir default \
        --heldout /work/bench_data/heldout_channel.zarr --out docs/figures/uq_app.png

Opens ``notebooks/05_uncertainty.ipynb`` with the surrogate, a held-out store (calibration and the
coverage check) and a 200-member prior, runs all its cells and saves the app (controls, status,
maps, fan chart and calibration table) as ``--out``. Uses the browser harness of the tests
(``tests/lab_browser.py``): Chromium from the system, everything offline.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import papermill

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lab_browser import bokeh_figures, chromium_page, jupyter_lab, open_and_run_all  # noqa: E402

NOTEBOOK = "05_uncertainty.ipynb"
TIMEOUT_MS = 600_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="default", help='a `ccs-fno train` run directory, or "default"')
    parser.add_argument("--heldout", required=True, help="a store never used in training")
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures" / "uq_app.png"))
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
                "heldout_store": str(Path(args.heldout).resolve()),
                "n_members": args.members,
                "out_dir": str(root / "uq"),
            },
            prepare_only=True,
            progress_bar=False,
        )
        with jupyter_lab(root, Path(tmp) / "state") as lab, chromium_page(lab, 1600, 1000) as page:
            page.set_default_timeout(TIMEOUT_MS)
            open_and_run_all(page, lab, NOTEBOOK, timeout_s=TIMEOUT_MS / 1000)
            app = page.locator(".jp-OutputArea-output", has=page.locator("button", has_text="Cancel"))
            app.locator(".bk-Canvas").nth(4).wait_for()
            page.wait_for_function(
                "() => Object.values(window.Bokeh ? Bokeh.documents : []).length > 0", timeout=TIMEOUT_MS
            )
            for _ in range(600):
                if f"({args.members} members)" in bokeh_figures(page).get("mean", {}).get("title", ""):
                    break
                page.wait_for_timeout(500)
            app.locator(".bk-Canvas").nth(0).scroll_into_view_if_needed()
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
