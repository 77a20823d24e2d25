#!/usr/bin/env python3
"""Convert irtorch's real response data into `tutorlog algo predict` mastery CSVs.

Input: the irtorch wheel from PyPI (`pip download irtorch --no-deps`), read
without torch: every `.pt` is a zip whose `*/data/0` member is the raw float32
tensor storage; the shape and strides come from the pickle in `*/data.pkl`
(parsed here with a minimal opcode reader, never unpickled).

- Swedish SAT 2022B (`swedish_sat/swesat22b_{quant,verb}.pt`): 5,000 test-takers ×
  80 multiple-choice items each; cells are the chosen option (0-based), NaN when
  omitted; `*_correct.txt` is the 1-based answer key. correct = (option + 1 == key).
- National mathematics tests (`national_mathematics/mathematics_{1,2}.pt`): item
  scores 0..max; correct = full credit (score equals the item's maximum observed).

Output rows `user_id,item_id,skill_id,correct,timestamp,split`, in time order:
each test-taker sits the test in item order ("item order as time"), one minute per
item, test-takers two hours apart in file order. Omitted (NaN) cells are dropped.
`split` is `test` for a seeded-random 20 % of cells (held out: predicted, never
learned from) and `train` otherwise.

Usage: convert_irtorch.py WHEEL OUT_DIR [--seed N] [--holdout 0.2]
"""

import argparse
import array
import io
import math
import random
import struct
import sys
import zipfile
from datetime import datetime, timedelta, timezone

BASE = datetime(2022, 10, 22, 8, 0, tzinfo=timezone.utc)  # the 2022B sitting (autumn)


def tensor_meta(pkl: bytes):
    """(size, stride) of a `torch._utils._rebuild_tensor_v2` pickle.

    The protocol-2 pickle holds `(storage, offset, size_tuple, stride_tuple, ...)`;
    the two tuples are the first two runs of small ints closed by TUPLE2 (0x86).
    Enough for these files; anything else is refused rather than guessed.
    """
    ints, tuples, i = [], [], pkl.index(b"Q") + 1  # after the storage's BINPERSID
    while i < len(pkl) and len(tuples) < 2:
        op = pkl[i]
        if op == 0x4B:  # BININT1
            ints.append(pkl[i + 1]); i += 2
        elif op == 0x4D:  # BININT2
            ints.append(struct.unpack("<H", pkl[i + 1:i + 3])[0]); i += 3
        elif op == 0x4A:  # BININT
            ints.append(struct.unpack("<i", pkl[i + 1:i + 5])[0]); i += 5
        elif op == 0x86:  # TUPLE2
            tuples.append(tuple(ints[-2:])); ints = ints[:-2]; i += 1
        elif op == 0x71:  # BINPUT
            i += 2
        else:
            i += 1
    if len(tuples) != 2:
        sys.exit("unexpected tensor pickle layout")
    return tuples[0], tuples[1]


def load_matrix(wheel: zipfile.ZipFile, member: str):
    """Rows = test-takers, columns = items, as lists of floats (NaN = missing)."""
    pt = zipfile.ZipFile(io.BytesIO(wheel.read(member)))
    pkl = next(n for n in pt.namelist() if n.endswith("/data.pkl"))
    data = next(n for n in pt.namelist() if n.endswith("/data/0"))
    (rows, cols), (s0, s1) = tensor_meta(pt.read(pkl))
    values = array.array("f")
    values.frombytes(pt.read(data))
    if sys.byteorder != "little":
        values.byteswap()
    if len(values) != rows * cols:
        sys.exit(f"{member}: {len(values)} floats, expected {rows}×{cols}")
    return [[values[r * s0 + c * s1] for c in range(cols)] for r in range(rows)]


def write_csv(path, skill, matrix, correct_of, rng, holdout):
    n = kept = held = right = 0
    with open(path, "w", newline="") as out:
        out.write("user_id,item_id,skill_id,correct,timestamp,split\n")
        for u, row in enumerate(matrix):
            start = BASE + timedelta(hours=2 * u)
            for j, cell in enumerate(row):
                n += 1
                if math.isnan(cell):
                    continue
                ok = correct_of(j, cell)
                split = "test" if rng.random() < holdout else "train"
                ts = (start + timedelta(minutes=j)).strftime("%Y-%m-%dT%H:%M:%SZ")
                out.write(f"{skill}_u{u:04d},{skill}_q{j + 1:02d},{skill},{int(ok)},{ts},{split}\n")
                kept += 1; held += split == "test"; right += ok
    print(f"{path}: {len(matrix)} test-takers × {len(matrix[0])} items, {n} cells, "
          f"{kept} answered ({n - kept} omitted), {held} held out, "
          f"{right / kept:.3f} correct")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("wheel")
    ap.add_argument("out_dir")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--holdout", type=float, default=0.2)
    a = ap.parse_args()
    wheel = zipfile.ZipFile(a.wheel)
    rng = random.Random(a.seed)
    for part in ("quant", "verb"):
        base = f"irtorch/datasets/swedish_sat/swesat22b_{part}"
        key = wheel.read(base + "_correct.txt").decode().strip()
        matrix = load_matrix(wheel, base + ".pt")
        if len(key) != len(matrix[0]):
            sys.exit(f"{base}: key has {len(key)} answers for {len(matrix[0])} items")
        write_csv(f"{a.out_dir}/swesat22b_{part}.csv", f"sat_{part}", matrix,
                  lambda j, cell, key=key: int(cell) + 1 == int(key[j]), rng, a.holdout)
    for part in ("1", "2"):
        matrix = load_matrix(wheel, f"irtorch/datasets/national_mathematics/mathematics_{part}.pt")
        maxes = [max((r[j] for r in matrix if not math.isnan(r[j])), default=0.0)
                 for j in range(len(matrix[0]))]
        write_csv(f"{a.out_dir}/mathematics_{part}.csv", f"math{part}", matrix,
                  lambda j, cell, maxes=maxes: cell == maxes[j], rng, a.holdout)


if __name__ == "__main__":
    main()
