#!/usr/bin/env python3
"""Folds `perf script` output into `frame;frame;... count` lines (Brendan Gregg's format)."""
import re, sys, collections
counts = collections.Counter()
stack = []; comm = None
sym_re = re.compile(r'^\s*[0-9a-f]+\s+(.+?)\s+\((.*)\)\s*$')
def flush():
    global stack, comm
    if comm is not None and stack:
        counts[';'.join([comm] + stack[::-1])] += 1
    stack = []; comm = None
for line in sys.stdin:
    line = line.rstrip('\n')
    if not line.strip():
        flush(); continue
    if not line.startswith((' ', '\t')):
        flush()
        comm = line.split()[0]
        continue
    m = sym_re.match(line)
    if m:
        sym = m.group(1)
        sym = re.sub(r'\+0x[0-9a-f]+$', '', sym)
        if sym == '[unknown]':
            sym = '[unknown ' + m.group(2).rsplit('/',1)[-1] + ']'
        stack.append(sym.replace(';', ':'))
flush()
for k, v in counts.most_common():
    print(f"{k} {v}")
