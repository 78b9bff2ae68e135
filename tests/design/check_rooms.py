#!/usr/bin/env python3
"""The rooms of lpsim depend one way (docs/DESIGN.md): a file in a room includes only its own room and rooms below.

Reads every #include "<room>/..." and "lpsim/<room>/..." in include/lpsim/<room>/, src/<room>/ and cuda/, and fails
naming each file that includes a room above its own. The one exception is lpsim/config/config_error.hpp, the error
type every room throws (util's file readers too). Usage: check_rooms.py SOURCE_DIR
"""
import os
import re
import sys

ORDER = ["util", "config", "format", "stats", "accum", "model", "device", "emulation", "reference", "diag", "hw", "sweep", "trajectory",
         "cuda", "cli", "python"]
EVERYWHERE = {"lpsim/config/config_error.hpp", "config/config_error.hpp"}
MAINS = {"cuda/lpsim_cuda_main.cpp": "cli"}  # a program's main sits with the command line, whatever its folder
INCLUDE = re.compile(r'^\s*#\s*include\s+"((?:lpsim/)?([a-z_]+)/[^"]+)"', re.M)


def files(root, room_dir):
    for dirpath, _, names in os.walk(room_dir):
        for n in names:
            if n.endswith((".hpp", ".cpp", ".cu", ".cuh", ".h")):
                yield os.path.join(dirpath, n)


def selftest():
    """A tree with one back-arrow (format including model) must fail, and the same tree without it pass."""
    import tempfile
    with tempfile.TemporaryDirectory() as t:
        os.makedirs(f"{t}/include/lpsim/format"), os.makedirs(f"{t}/src/model")
        open(f"{t}/src/model/a.cpp", "w").write('#include "lpsim/format/f.hpp"\n#include "util/u.hpp"\n')
        open(f"{t}/include/lpsim/format/f.hpp", "w").write('#include "lpsim/config/config_error.hpp"\n')
        clean = check(t)
        open(f"{t}/include/lpsim/format/f.hpp", "a").write('#include "lpsim/model/m.hpp"\n')
        return clean == [] and len(check(t)) == 1


def main():
    if sys.argv[1] == "--selftest":
        ok = selftest()
        print("selftest", "passed" if ok else "FAILED")
        return 0 if ok else 1
    bad, seen = check(sys.argv[1], counted=True)
    for b in bad:
        print(b)
    print(f"{seen} files, {len(bad)} includes against the order {' < '.join(ORDER)}")
    return 1 if bad else 0


def check(root, counted=None):
    rank = {r: i for i, r in enumerate(ORDER)}
    bad, seen = [], 0
    places = [(r, os.path.join(root, "include", "lpsim", r)) for r in ORDER] + \
             [(r, os.path.join(root, "src", r)) for r in ORDER] + [("cuda", os.path.join(root, "cuda"))]
    for room, d in places:
        if not os.path.isdir(d):
            continue
        for f in files(root, d):
            seen += 1
            own = MAINS.get(os.path.relpath(f, root), room)
            for m in INCLUDE.finditer(open(f, encoding="utf-8").read()):
                path, target = m.group(1), m.group(2)
                if target not in rank or path in EVERYWHERE:
                    continue
                if rank[target] > rank[own]:
                    bad.append(f"{os.path.relpath(f, root)} (room {own}) includes {path} (room {target}, above it)")
    return bad if counted is None else (bad, seen)


sys.exit(main())
