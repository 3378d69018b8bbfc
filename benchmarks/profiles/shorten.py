#!/usr/bin/env python3
"""Shortens folded stacks: drops generic arguments from frame names so files stay readable."""
import sys
def strip_generics(name):
    out, depth = [], 0
    for ch in name:
        if ch == '<':
            depth += 1
            if depth == 1: out.append('<..>')
            continue
        if ch == '>' and depth > 0:
            depth -= 1; continue
        if depth == 0: out.append(ch)
    return ''.join(out)
import collections
c = collections.Counter()
for line in sys.stdin:
    stack, n = line.rstrip('\n').rsplit(' ', 1)
    c[';'.join(strip_generics(f) for f in stack.split(';'))] += int(n)
for k, v in c.most_common():
    print(k, v)
