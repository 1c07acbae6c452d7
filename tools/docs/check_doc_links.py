#!/usr/bin/env python3
"""Checks that every markdown link and image target in README.md, CHANGELOG.md and
docs/**/*.md exists, and that an anchor (#...) names a heading of the target file (GitHub's
slug of it). Links inside fenced code blocks and to URLs are skipped. Prints each broken
link and exits 1 when there is one.

    python3 tools/docs/check_doc_links.py [REPOSITORY_ROOT]
"""
import glob, os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
os.chdir(root)
files = ['README.md', 'CHANGELOG.md'] + sorted(glob.glob('docs/**/*.md', recursive=True))
link = re.compile(r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')
def slugs(path):
    out, seen = set(), {}
    text = open(path, encoding='utf-8').read()
    text = re.sub(r'```.*?```', '', text, flags=re.S)
    for m in re.finditer(r'^#{1,6}\s+(.*?)\s*#*\s*$', text, flags=re.M):
        h = m.group(1)
        h = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', h)
        s = h.strip().lower()
        s = re.sub(r'[^\w\- ]', '', s)
        s = s.replace(' ', '-')
        n = seen.get(s, 0); seen[s] = n + 1
        out.add(s if n == 0 else f'{s}-{n}')
    return out
bad = checked = 0
for f in files:
    text = open(f, encoding='utf-8').read()
    text_nocode = re.sub(r'```.*?```', '', text, flags=re.S)
    for m in link.finditer(text_nocode):
        target = m.group(1)
        if re.match(r'^[a-z]+:', target):
            continue
        checked += 1
        path, _, anchor = target.partition('#')
        dest = os.path.normpath(os.path.join(os.path.dirname(f), path)) if path else f
        if not os.path.exists(dest):
            print(f'{f}: missing {target}'); bad += 1; continue
        if anchor:
            if not dest.endswith('.md'):
                print(f'{f}: anchor on non-markdown {target}'); bad += 1
            elif anchor not in slugs(dest):
                print(f'{f}: no heading for #{anchor} in {dest}'); bad += 1
print(f'{len(files)} files, {checked} links checked, {bad} broken')
sys.exit(1 if bad else 0)
