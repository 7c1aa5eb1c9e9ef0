"""End-to-end latency of the scenario explorer in the browser: control change -> canvas redrawn.

    .venv/bin/python bench/bench_explorer.py --run-dir default --repeats 8
    .venv/bin/python bench/bench_explorer.py --run-dir /work/bench_data/acc_run --repeats 8

Opens ``notebooks/03_explore_scenarios.ipynb`` in a real JupyterLab in a real headless Chromium
(the harness of the tests, ``tests/lab_browser.py``), runs it, then changes every control as a
user would (keyboard on sliders, typing the seed, choosing from drop-downs, clicking). In the
page, the time of the input event is taken when it reaches the document (``performance.now()``,
capture phase), every Bokeh document change is recorded (BokehJS ``Document.on_change``), and
after each change ``requestAnimationFrame`` + ``setTimeout(0)`` marks the end of the frame that
paints it. Latency = input event -> end of the frame that painted the last change of the update
(no further change for 0.5 s). Printed: median and max per control.

Scrubbing: the time slider's handle gets ``--scrub-keys`` arrow presses ``--scrub-interval-ms``
apart (key repeat); printed are the frames drawn, the largest lag (slider steps between the time
drawn and the time asked for when a frame is painted), the stale frames drawn after the last key
press before the final one, and the time from the last key press to the final frame.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import papermill

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lab_browser import chromium_page, jupyter_lab, open_and_run_all  # noqa: E402

NOTEBOOK = ROOT / "notebooks" / "03_explore_scenarios.ipynb"
TIMEOUT_MS = 240_000
QUIET_MS = 500  # an update is over when no Bokeh change came for this long

PROBE_JS = """() => {
  const p = window.__probe = {input: null, changes: [], painted: null, frames: []};
  const mark = (e) => { if (p.input === null) p.input = performance.now(); };
  for (const type of ['keydown', 'change', 'click', 'input'])
    document.addEventListener(type, mark, true);
  const surrogateTitle = () => {
    for (const doc of Bokeh.documents) for (const m of doc.all_models)
      if (m.type === 'Figure' && m.name === 'surrogate') return m.title.text;
    return null;
  };
  for (const doc of Bokeh.documents) doc.on_change(() => {
    const t = performance.now();
    p.changes.push(t);
    const title = surrogateTitle();
    requestAnimationFrame(() => setTimeout(() => {
      const now = performance.now();
      p.painted = now;
      if (p.frames.length === 0 || p.frames[p.frames.length - 1].title !== title)
        p.frames.push({title: title, painted: now});
    }, 0));
  });
  return Bokeh.documents.length;
}"""
RESET_JS = (
    "() => { const p = window.__probe; p.input = null; p.changes = []; p.painted = null; p.frames = []; }"
)
STATE_JS = "() => ({input: __probe.input, changes: __probe.changes.length, last: __probe.changes.at(-1) ?? null, painted: __probe.painted, now: performance.now(), frames: __probe.frames})"  # noqa: E501


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def wait_for_update(page, timeout_s: float = 30.0) -> float | None:
    """Milliseconds from the input event to the paint of the update's last change (None: no change)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        s = page.evaluate(STATE_JS)
        if s["changes"] and s["painted"] is not None and s["painted"] >= s["last"]:
            if s["now"] - s["last"] > QUIET_MS:
                return s["painted"] - s["input"]
        page.wait_for_timeout(50)
    return None


def slider(app, page, label: str):
    handle = app.locator(".widget-hslider", has=page.get_by_text(label, exact=True)).locator(".noUi-handle")

    def change(i: int) -> None:  # one step, back and forth, never against an end of the range
        handle.focus()
        now, low, high = (float(handle.get_attribute(f"aria-value{a}")) for a in ("now", "min", "max"))
        right = now <= low or (now < high and i % 2 == 0)
        page.keyboard.press("ArrowRight" if right else "ArrowLeft")

    return change


def measure(page, change, repeats: int, name: str = "") -> list[float]:
    out = []
    for i in range(repeats):
        page.evaluate(RESET_JS)
        change(i)
        ms = wait_for_update(page)
        if ms is None:
            raise RuntimeError(f"changing {name!r} drew nothing within 30 s")
        out.append(ms)
    return out


def scrub(page, app, keys: int, interval_ms: int, n_times: int) -> dict:
    """Press ArrowLeft ``keys`` times on the time slider from its last time (report times every
    20 d, ``n_times`` of them); the presses (page time, index asked for) and frames drawn."""
    handle = app.locator(".widget-hslider", has=page.get_by_text("time", exact=True)).locator(".noUi-handle")
    handle.focus()
    page.keyboard.press("End")  # start from the last report time
    page.wait_for_timeout(1500)
    page.evaluate(RESET_JS)
    pressed = []  # (time in the page, index asked for)
    index = n_times - 1
    for _ in range(keys):
        page.keyboard.press("ArrowLeft")
        index -= 1
        pressed.append((page.evaluate("() => performance.now()"), index))
        page.wait_for_timeout(interval_ms)
    wait_for_update(page)
    frames = page.evaluate(STATE_JS)["frames"]
    return {"pressed": pressed, "frames": frames}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default="default", help='a `ccs-fno train` run, or "default"')
    parser.add_argument("--repeats", type=int, default=8, help="changes per control")
    parser.add_argument("--scrub-keys", type=int, default=20)
    parser.add_argument("--scrub-interval-ms", type=int, default=33)
    args = parser.parse_args(argv)
    run_dir = args.run_dir if args.run_dir == "default" else str(Path(args.run_dir).resolve())
    print(f"load at start: {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "lab"
        root.mkdir()
        papermill.execute_notebook(
            NOTEBOOK,
            root / "explore.ipynb",
            parameters={"run_dir": run_dir},
            prepare_only=True,
            progress_bar=False,
        )
        with jupyter_lab(root, Path(tmp) / "state") as lab, chromium_page(lab, 1600, 1000) as page:
            page.set_default_timeout(TIMEOUT_MS)
            open_and_run_all(page, lab, "explore.ipynb", timeout_s=TIMEOUT_MS / 1000)
            app = page.locator(".jp-OutputArea-output", has=page.locator("button", has_text="Simulate"))
            app.locator(".bk-Canvas").nth(6).wait_for()
            page.wait_for_timeout(2000)
            n_docs = page.evaluate(PROBE_JS)
            seed_box = app.locator(".widget-text", has_text="seed").locator("input")

            def seed(i: int) -> None:
                seed_box.fill(str(i + 1))
                seed_box.press("Enter")

            geology = app.locator(".widget-dropdown select").first

            def kind(i: int) -> None:
                geology.select_option("gaussian" if i % 2 == 0 else "channel")

            def wells(i: int) -> None:
                app.locator("button", has_text="wells into channel").click()

            channel_controls = {
                "time slider": slider(app, page, "time"),
                "injection rate": slider(app, page, "rate (m³/day)"),
                "injector depth": slider(app, page, "inj. depth (m)"),
                "producer depth": slider(app, page, "prod. depth (m)"),
                "channel permeability": slider(app, page, "channel (mD)"),
                "host-rock permeability": slider(app, page, "host rock (mD)"),
                "channel thickness": slider(app, page, "thickness (m)"),
                "geology seed": seed,
                "wells into channel": wells,
                "geology kind": kind,
            }
            results = {}
            for name, change in channel_controls.items():
                if name == "wells into channel":  # moves only after the seed moved the channel
                    results[name] = []
                    for i in range(args.repeats):
                        seed(100 + i)
                        wait_for_update(page)
                        results[name] += measure(page, change, 1)
                    continue
                results[name] = measure(page, change, args.repeats, name)
            geology.select_option("gaussian")
            wait_for_update(page)
            for label, name in (
                ("mean k (mD)", "gaussian mean k"),
                ("variance ln k", "gaussian variance"),
                ("length (m)", "gaussian length"),
                ("anisotropy", "gaussian anisotropy"),
                ("dip (deg)", "gaussian dip"),
            ):
                results[name] = measure(page, slider(app, page, label), args.repeats, name)
            covariance = app.locator(".widget-dropdown", has_text="covariance").locator("select")
            options = covariance.locator("option").all_inner_texts()
            results["gaussian covariance"] = measure(
                page, lambda i: covariance.select_option(options[(i + 1) % len(options)]), args.repeats
            )
            geology.select_option("channel")
            wait_for_update(page)
            scrubbed = scrub(page, app, args.scrub_keys, args.scrub_interval_ms, n_times=51)
            print(f"load at end: {load()}")

    print(f"\nexplorer end-to-end latency in JupyterLab + Chromium, run {run_dir} ({n_docs} Bokeh document)")
    print("input event -> frame painted with the update's last change; repeats per control:", args.repeats)
    print(f"  {'control':<26s} {'median ms':>10s} {'max ms':>8s}")
    for name, ms in results.items():
        print(f"  {name:<26s} {statistics.median(ms):10.0f} {max(ms):8.0f}")
    pressed, frames = scrubbed["pressed"], scrubbed["frames"]

    def shown(frame) -> int:
        t = float(re.search(r"at ([\d.]+) d", frame["title"]).group(1))
        return int(round(t / 20.0))

    lags = []
    for frame in frames:
        asked = [index for when, index in pressed if when <= frame["painted"]]
        if asked:
            lags.append(shown(frame) - asked[-1])
    last_press = pressed[-1][0]
    after = [f for f in frames if f["painted"] > last_press]
    final = after[-1]["painted"] - last_press if after else float("nan")
    print(
        f"\ntime-slider scrub: {len(pressed)} key presses {args.scrub_interval_ms} ms apart; "
        f"{len(frames)} frames drawn; largest lag {max(lags) if lags else 0} steps; "
        f"stale frames after the last press: {max(len(after) - 1, 0)}; "
        f"last press -> final frame {final:.0f} ms (final frame: {frames[-1]['title'] if frames else None})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
