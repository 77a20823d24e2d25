#!/usr/bin/env python3
"""Grid-search mastery params with `tutorlog algo predict` + `algo evaluate`.

Tunes on one CSV (use a different one to confirm: tuning and reporting on the same
cells overfits). Prints one line per params set, best log loss last.

Usage: tune.py BINARY TUNE_CSV {bkt|elo} [--rows N]
"""

import argparse
import itertools
import json
import os
import subprocess
import tempfile

GRIDS = {
    "bkt": (1, {
        "p_init": [0.3, 0.5, 0.6],
        "p_learn": [0.0, 0.01, 0.1],
        "p_slip": [0.1, 0.2, 0.3],
        "p_guess": [0.2, 0.3, 0.4],
    }),
    "elo": (2, {
        "k_factor": [0.2, 0.4, 0.8, 1.2],
        "k_decay": [0.0, 0.05, 0.2],
    }),
}


def score(binary, csv, version, params, tmp):
    pfile = os.path.join(tmp, "params.json")
    with open(pfile, "w") as f:
        json.dump(params, f)
    out = os.path.join(tmp, "pred.csv")
    subprocess.run([binary, "algo", "predict", "--algo", "mastery", "--version", str(version),
                    "--params", pfile, "--input", csv, "--output", out],
                   check=True, capture_output=True)
    report = subprocess.run([binary, "algo", "evaluate", "--input", out],
                            check=True, capture_output=True, text=True).stdout
    row = next(l for l in report.splitlines() if l.startswith("held_out"))
    _, _, _, auc, base_auc, ll, base_ll = row.split()
    return float(auc), float(ll), float(base_auc), float(base_ll)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("csv")
    ap.add_argument("model", choices=GRIDS)
    ap.add_argument("--rows", type=int, default=0, help="use only the first N data rows")
    a = ap.parse_args()
    version, grid = GRIDS[a.model]
    with tempfile.TemporaryDirectory() as tmp:
        csv = a.csv
        if a.rows:
            csv = os.path.join(tmp, "subset.csv")
            with open(a.csv) as src, open(csv, "w") as dst:
                for i, line in enumerate(src):
                    if i > a.rows:
                        break
                    dst.write(line)
        results = []
        for values in itertools.product(*grid.values()):
            params = dict(zip(grid.keys(), values))
            if a.model == "bkt" and params["p_slip"] + params["p_guess"] >= 1:
                continue
            auc, ll, bauc, bll = score(a.binary, csv, version, params, tmp)
            results.append((ll, auc, params))
            print(f"auc {auc:.4f} logloss {ll:.4f} (baseline {bauc:.4f} / {bll:.4f}) {json.dumps(params)}", flush=True)
        results.sort(key=lambda r: r[0], reverse=True)
        print("best:", json.dumps(results[-1][2]), f"auc {results[-1][1]:.4f} logloss {results[-1][0]:.4f}")


if __name__ == "__main__":
    main()
