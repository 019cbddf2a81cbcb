"""Lighthouse on the overview and every lab page, against a real stack.

Each page is loaded `runs` times with Lighthouse 12 (its default mobile
configuration: a Moto G Power viewport, simulated slow 4G and a 4x slower
CPU; optionally also its desktop preset) in a fresh headless Chromium, so
every load of a lab page starts a new run with the lab's defaults and its
frames stream in while the page loads.  Lighthouse comes from npm (`npx -y
lighthouse@12`, from the npm cache when offline) and uses the system's
Chromium; without either the section is skipped with a message.

Per page: performance, accessibility and best-practices scores (0-100), the
page weight (Lighthouse's total-byte-weight, KiB transferred) and the
metrics behind the performance score (FCP, LCP, TBT, CLS, speed index), as
the median and the worst of the runs."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time

LIGHTHOUSE = os.environ.get("PATTERN_LAB_LIGHTHOUSE", "lighthouse@12")
CATEGORIES = ("performance", "accessibility", "best-practices")
METRICS = {  # audit id -> short name
    "first-contentful-paint": "fcp_ms",
    "largest-contentful-paint": "lcp_ms",
    "total-blocking-time": "tbt_ms",
    "cumulative-layout-shift": "cls",
    "speed-index": "si_ms",
}
TARGETS = {"performance": 95, "accessibility": 100, "best-practices": 100, "kib": 150}


def chromium() -> str | None:
    for name in (os.environ.get("CHROME_PATH", ""), "chromium", "chromium-browser", "google-chrome"):
        if name and (path := shutil.which(name)):
            return path
    return None


def available() -> str | None:
    """None if Lighthouse can run here, else why not."""
    if not shutil.which("npx"):
        return "npx (Node.js) is not installed"
    if not chromium():
        return "no Chromium found (apt install chromium, or set CHROME_PATH)"
    try:
        out = subprocess.run(["npx", "-y", LIGHTHOUSE, "--version"], capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"npx {LIGHTHOUSE} did not start ({err})"
    if out.returncode != 0:
        return f"npx {LIGHTHOUSE} is not available ({(out.stderr or out.stdout).strip().splitlines()[-1:]})"
    return None


def audit(url: str, preset: str = "mobile", timeout: float = 240) -> dict:
    """One Lighthouse run of one page; the figures we report."""
    with tempfile.TemporaryDirectory(prefix="pattern-lab-lh-") as tmp:
        out = os.path.join(tmp, "report.json")
        profile = os.path.join(tmp, "profile")
        argv = ["npx", "-y", LIGHTHOUSE, url, f"--chrome-path={chromium()}",
                f"--chrome-flags=--headless=new --no-sandbox --disable-gpu --user-data-dir={profile}",
                f"--only-categories={','.join(CATEGORIES)}", "--output=json", f"--output-path={out}", "--quiet"]
        if preset == "desktop":
            argv.append("--preset=desktop")
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        finally:
            kill_browser(profile)  # Lighthouse leaves its Chromium behind when it fails or times out
        if proc.returncode != 0 or not os.path.exists(out):
            raise RuntimeError(f"lighthouse failed on {url}: {proc.stderr.strip()[-400:]}")
        with open(out) as f:
            report = json.load(f)
    audits = report["audits"]
    row = {c: round((report["categories"][c]["score"] or 0) * 100) for c in CATEGORIES}
    row["kib"] = audits["total-byte-weight"]["numericValue"] / 1024
    for key, name in METRICS.items():
        row[name] = audits[key]["numericValue"]
    # What cost points: every scored audit below 1 (its id), for the report.
    row["failed"] = sorted({ref["id"] for cat in CATEGORIES for ref in report["categories"][cat]["auditRefs"]
                            if ref["weight"] > 0 and (audits[ref["id"]].get("score") is not None)
                            and audits[ref["id"]]["score"] < 1})
    if report.get("runtimeError"):
        row["error"] = report["runtimeError"].get("message", "")
    return row


def kill_browser(profile: str) -> None:
    """SIGKILL the Chromium processes started with this profile directory, if any are left."""
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read()
        except OSError:
            continue
        if f"--user-data-dir={profile}".encode() in cmdline:
            try:
                os.kill(int(pid), 9)
            except OSError:
                pass


def pages(slugs: list[str]) -> list[tuple[str, str]]:
    return [("overview", "/")] + [(slug, f"/patterns/{slug}/") for slug in slugs]


def summarize(rows: list[dict]) -> dict:
    """Median and worst of one page's runs (worst: lowest score, highest cost)."""
    out: dict = {}
    for key in (*CATEGORIES, "kib", *METRICS.values()):
        values = [r[key] for r in rows]
        worst = min(values) if key in CATEGORIES else max(values)
        out[key] = {"median": statistics.median(values), "worst": worst}
    out["failed"] = sorted({a for r in rows for a in r["failed"]})
    return out


def pair(summary: dict, key: str, fmt: str = "{:.0f}") -> str:
    return f"{fmt.format(summary[key]['median'])}/{fmt.format(summary[key]['worst'])}"


def lighthouse_bench(base: str, slugs: list[str], runs: int, presets: list[str], say) -> dict:
    results: dict = {"runs": runs, "presets": presets, "pages": {}}
    for preset in presets:
        table = results["pages"][preset] = {}
        say(f"Lighthouse 12, {preset} ({runs} run{'s' if runs != 1 else ''} per page; median / worst)")
        say(f"  {'page':<18} {'perf':>9} {'a11y':>9} {'best pr.':>9} {'KiB':>11} {'TBT ms':>11} {'LCP ms':>11}"
            f" {'CLS':>11}  audits below 1")
        for name, path in pages(slugs):
            rows, errors = [], []
            for _ in range(runs):
                for _attempt in range(2):  # on a loaded machine Lighthouse sometimes times out: once more
                    start = time.monotonic()
                    try:
                        row = audit(base + path, preset)
                    except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as err:
                        errors.append(str(err)[-200:])
                        continue
                    row["seconds"] = time.monotonic() - start
                    row["load"] = os.getloadavg()[0]
                    rows.append(row)
                    break
            if not rows:
                table[name] = {"runs": [], "errors": errors}
                say(f"  {name:<18} Lighthouse failed every time: {errors[-1]}")
                continue
            s = summarize(rows)
            table[name] = {"runs": rows, "errors": errors, **s}

            say(f"  {name:<18} {pair(s, 'performance'):>9} {pair(s, 'accessibility'):>9}"
                f" {pair(s, 'best-practices'):>9} {pair(s, 'kib'):>11} {pair(s, 'tbt_ms'):>11}"
                f" {pair(s, 'lcp_ms'):>11} {pair(s, 'cls', '{:.3f}'):>11}  {' '.join(s['failed']) or '-'}"
                + (f" ({len(errors)} failed runs)" if errors else ""))
        table = {k: v for k, v in table.items() if v["runs"]}
        labs_only = [v for k, v in table.items() if k != "overview"] or list(table.values())
        if not table:
            continue
        for key in CATEGORIES:
            medians = [v[key]["median"] for v in labs_only]
            worst = [v[key]["worst"] for v in labs_only]
            say(f"  lab pages, {key}: median of medians {statistics.median(medians):.0f}, min of medians"
                f" {min(medians):.0f}, min of all runs {min(worst):.0f}")
        say(f"  page weight: max {max(v['kib']['worst'] for v in table.values()):.0f} KiB")
        misses = [f"{page} {key} {v[key]['median']:.0f}" for page, v in table.items() for key in CATEGORIES
                  if v[key]["median"] < TARGETS[key]]
        misses += [f"{page} {v['kib']['worst']:.0f} KiB" for page, v in table.items() if v["kib"]["worst"] > TARGETS["kib"]]
        say(f"  below target (median): {', '.join(misses) if misses else 'none'}\n")
    return results
