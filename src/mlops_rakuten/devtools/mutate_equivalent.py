"""The equivalent mutants of `make mutate` (devtools/mutate.py): changes no test can notice, each with why."""

from __future__ import annotations

# Mutants that change no behaviour, so no test can kill them: (module, code before, code after (any
# of), why). Matched on the changed line's text, so the list survives renumbering when code moves.
EQUIVALENT: list[tuple[str, str, tuple[str, ...], str]] = [
    (
        "serve/login_limits.py",
        "level >= 1",
        ("level > 1",),
        "at a level of 1 the other branch is (1 - 1) / rate, 0.0 too",
    ),
    ("serve/login_limits.py", "popitem(last=False)", ("popitem(last=None)",), "None is false: still the oldest key"),
    ("serve/auth.py", "algorithm=ALGORITHM)", ("settings.jwt_secret, )",), "PyJWT signs with HS256 when none is named"),
    ("serve/users.py", "problem = None", ('problem = ""',), "both are false for the `if problem:` below"),
    (
        "serve/users.py",
        "self.error: str | None = None",
        ('self.error: str | None = ""',),
        "_reload, called next, sets it",
    ),
    ("serve/users.py", 'encoding="utf-8"', ('encoding="UTF-8"',), "codec names are case-insensitive"),
    (
        "serve/users.py",
        'encoding="utf-8"',
        ("encoding=None",),
        "json.dump writes ASCII only and this machine's locale is UTF-8: both read it the same",
    ),
    ("ops/registry.py", "check=False", ("check=None",), "None is false: run() checks nothing either way"),
    (
        "ops/registry.py",
        'tag.rsplit("@", 1)[-1]',
        ('tag.rsplit("@", )[-1]', 'tag.split("@", 1)[-1]', 'tag.rsplit("@", 2)[-1]', 'tag.rsplit("@", 1)[+1]'),
        "a version tag holds exactly one @ (a name cannot): every split gives the same last part",
    ),
    (
        "ops/registry.py",
        "if result.returncode == 0 else {}",
        ("if (result.returncode == 0) or True else {}",),
        "a failed `git show` prints nothing on stdout: parse_yaml('') or {} is {} too",
    ),
    ("ops/registry.py", 'version or ""', ('version or "XXXX"',), '"XXXX" is no vX.Y.Z either: the same refusal'),
    (
        "monitoring/comparison.py",
        '"support": old["support"]}',
        ('"XXsupportXX": old["support"]}', '"SUPPORT": old["support"]}'),
        "the candidate's support is never read: the table shows production's",
    ),
    ("monitoring/slices.py", 'float("nan")', ('float("NAN")',), "float() reads nan in any case"),
    ("monitoring/slices.py", "axis=0)", ("axis=None)", "1 - tail], )"), "the differences are one-dimensional"),
    (
        "monitoring/slices.py",
        "where=total > 0)",
        ("where=total > 1)",),
        "a total of 1 means no hit: 2 * 0 / 1 is the 0 already in out",
    ),
    (
        "monitoring/slices.py",
        "block = max(1, _BLOCK_CELLS // max(n, 1))",
        ("max(2, _BLOCK_CELLS", "max(n, 2))"),
        "the block changes only past a million products, or at one product where it exceeds the replicates anyway",
    ),
    ("monitoring/slices.py", "rng.integers(0, n, ", ("rng.integers(n, ",), "integers(n) draws from [0, n) too"),
    (
        "monitoring/slices.py",
        'if n else float("nan")',
        ('if (n) or True else float("nan")',),
        "an empty slice's weighted F1 is then 0 / 0: NaN as well",
    ),
    (
        "monitoring/signals.py",
        "np.asarray(unknown, dtype=np.float64)",
        ("np.asarray(unknown, dtype=None)", "np.asarray(unknown, )"),
        "tokens is float64 already: the division is float64 either way",
    ),
    ("monitoring/significance.py", ".astype(float)", (".astype(None)",), "numpy reads dtype None as float64"),
    (
        "monitoring/significance.py",
        "pooled = np.bincount(index, minlength=len(codes))",
        ("pooled = np.bincount(index, )",),
        "the pooled samples hold every code: the counts reach the last one anyway",
    ),
    (
        "monitoring/significance.py",
        ", dtype=float)",
        (", dtype=None)", "], )", "(column), )"),
        "signal frames hold ints and floats: each test and mean gives the same on either dtype",
    ),
    (
        "monitoring/drift.py",
        "strict=True)",
        ("strict=None)", "strict=False)", ", )"),
        "the sequences are built the same length: strict only guards later changes",
    ),
    (
        "monitoring/drift.py",
        "for code in CODES], dtype=float)",
        ("for code in CODES], dtype=None)", "for code in CODES], )"),
        "the division that follows gives floats either way",
    ),
]
