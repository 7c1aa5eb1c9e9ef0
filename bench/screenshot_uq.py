"""Screenshot of the UQ app in a real JupyterLab (headless Chromium, 1600 x 1000), for the README.

    .venv/bin/python bench/screenshot_uq.py --run-dir default \
        --heldout /work/bench_data/heldout_channel.zarr --out docs/figures/uq_app.png

Opens ``notebooks/05_uncertainty.ipynb`` with the surrogate, a held-out store (calibration and the
coverage check) and a 200-member prior, runs all its cells and saves the app (controls, status,
maps, fan chart and calibration table) as ``--out``. Uses the browser harness of the tests
(``tests/lab_browser.py``, through ``bench/screenshots.py``): Chromium from the system, everything
offline.
"""

from __future__ import annotations

import sys
from pathlib import Path

from screenshots import bokeh_figures, notebook_page, run_dir_parameter, save_screenshot, screenshot_parser

NOTEBOOK = "05_uncertainty.ipynb"
TIMEOUT_MS = 600_000


def main(argv: list[str] | None = None) -> int:
    parser = screenshot_parser(__doc__.splitlines()[0], "uq_app.png")
    parser.add_argument("--heldout", required=True, help="a store never used in training")
    parser.add_argument("--members", type=int, default=200)
    args = parser.parse_args(argv)

    def parameters(tmp: Path) -> dict:
        return {
            "run_dir": run_dir_parameter(args.run_dir),
            "heldout_store": str(Path(args.heldout).resolve()),
            "n_members": args.members,
            "out_dir": str(tmp / "lab" / "uq"),
        }

    with notebook_page(NOTEBOOK, parameters, (1600, 1000), TIMEOUT_MS) as page:
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
        save_screenshot(page, app, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
