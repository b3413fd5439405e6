"""The commands in README.md and docs/*.md name scripts, configs and flags
that exist: every fenced ``bash`` block is read, its ``python X.py ...``
lines are split into the script, the repository paths and the ``--flags``
they use; the paths must exist (fast), and every flag must appear in the
script's ``--help`` (slow: one process per script)."""
import glob
import itertools
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ['README.md'] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(f'{ROOT}/docs/*.md'))
PATH_PREFIXES = ('configs/', 'tools/', 'demo/')


def bash_blocks(text):
    return re.findall(r'^```bash\n(.*?)^```', text, re.S | re.M)


def _expand_braces(token):
    match = re.search(r'\{([^{}]*)\}', token)
    if not match:
        return [token]
    head, tail = token[:match.start()], token[match.end():]
    return list(itertools.chain.from_iterable(
        _expand_braces(head + part + tail)
        for part in match.group(1).split(',')))


def python_commands(path):
    """``(doc, script, tokens)`` of every ``python X.py`` line."""
    text = open(os.path.join(ROOT, path)).read()
    for block in bash_blocks(text):
        block = re.sub(r'\\\n\s*', ' ', block)
        for line in block.splitlines():
            line = line.split(' #')[0].strip()
            if not line or line.startswith('#'):
                continue
            try:
                tokens = shlex.split(line)
            except ValueError:
                continue
            while tokens and re.match(r'^[A-Z_]+=', tokens[0]):
                tokens.pop(0)  # env assignments
            if len(tokens) < 2 or tokens[0] != 'python' or \
                    not tokens[1].endswith('.py'):
                continue
            yield path, tokens[1], tokens[2:]


COMMANDS = [c for doc in DOCS for c in python_commands(doc)]


def test_the_docs_have_commands():
    assert len(COMMANDS) > 30
    assert {doc for doc, _, _ in COMMANDS} >= {'README.md'}


def test_scripts_and_repository_paths_exist():
    missing = []
    for doc, script, tokens in COMMANDS:
        for token in [script] + tokens:
            token = token.split('=', 1)[-1]
            if not token.startswith(PATH_PREFIXES) or '<' in token:
                continue
            for path in _expand_braces(token.rstrip(',')):
                if not os.path.exists(os.path.join(ROOT, path)):
                    missing.append(f'{doc}: {path}')
    assert not missing, 'paths in the docs that do not exist:\n' + \
        '\n'.join(sorted(set(missing)))


@pytest.mark.slow
def test_flags_are_accepted_by_the_scripts():
    flags = {}
    for doc, script, tokens in COMMANDS:
        # a leading plain word is a sub-command (convert.py's family)
        sub = tokens[0] if tokens and re.fullmatch(r'[a-z][a-z0-9_]*',
                                                   tokens[0]) else None
        for token in tokens:
            if token.startswith('--') and len(token) > 2:
                flags.setdefault((script, sub), set()).add(
                    (doc, token.split('=')[0]))
    unknown = []
    for (script, sub), used in sorted(flags.items(), key=str):
        helps = []
        for args in [[script, '--help']] + (
                [[script, sub, '--help']] if sub is not None else []):
            res = subprocess.run([sys.executable] + args, cwd=ROOT,
                                 capture_output=True, text=True, timeout=300)
            if res.returncode == 0:
                helps.append(res.stdout)
        assert helps, (script, res.stderr[-2000:])
        for doc, flag in sorted(used):
            if not any(re.search(rf'{re.escape(flag)}\b', h) for h in helps):
                unknown.append(f'{doc}: {script} {flag}')
    assert not unknown, 'flags the scripts do not take:\n' + \
        '\n'.join(unknown)
