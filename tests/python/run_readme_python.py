"""Runs every ```python block of README.md as written, from the repository root, so that the README's Python
example cannot break unnoticed (it failed on its fourth line while every test passed)."""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
blocks = re.findall(r"```python\n(.*?)```", (root / "README.md").read_text(), re.S)
if not blocks:
    sys.exit("README.md has no python block")
for i, code in enumerate(blocks, 1):
    exec(compile(code, f"README.md python block {i}", "exec"), {"__name__": "__readme__"})
print(f"{len(blocks)} README python block(s) ran")
