"""`gotop top FILE` until the CLI has it: read a profile, print pprof's -top table.

Usage: python bench/top_entry.py FILE [-sample_index=NAME] [-cum]
It does what the CLI command will do (read, parse, report, print), so
bench/profile_top.py can time a whole process the same way.
"""

import sys

from gotop.model.profile import parse_profile
from gotop.model.profile_report import top
from gotop.model.profile_text import format_top


def main(argv: list[str]) -> int:
    path, options = argv[0], argv[1:]
    sample_index = next((o.split("=", 1)[1] for o in options if o.startswith("-sample_index=")), None)
    with open(path, "rb") as f:
        profile = parse_profile(f.read())
    report = top(profile, sample_index, cum="-cum" in options)
    sys.stdout.write("\n".join(format_top(profile, report)) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
