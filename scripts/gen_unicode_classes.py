#!/usr/bin/env python3
"""Prints the code-point class table of engine/unicode_classes.cc (letters, numbers,
punctuation: the Unicode general categories L*, N*, P*), as merged inclusive ranges.

Usage: scripts/gen_unicode_classes.py > /tmp/t && paste the table into engine/unicode_classes.cc
The Unicode version is that of the running Python's unicodedata module.
"""
import sys
import unicodedata

CLASSES = {"L": "L", "N": "N", "P": "P"}  # Aliases defined in unicode_classes.cc.


def main() -> None:
    ranges = []
    for cp in range(0x110000):
        cls = CLASSES.get(unicodedata.category(chr(cp))[0])
        if cls is None:
            continue
        if ranges and ranges[-1][2] == cls and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp, cls])
    print(f"// Unicode {unicodedata.unidata_version}: {len(ranges)} ranges.")
    line = ""
    for first, last, cls in ranges:
        item = f"{{0x{first:X}, 0x{last:X}, {cls}}},"
        if len(line) + len(item) + 1 > 98:
            print(line)
            line = ""
        line = (line + " " + item) if line else ("    " + item)
    if line:
        print(line)


if __name__ == "__main__":
    sys.exit(main())
