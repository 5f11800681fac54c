"""The fp32 noise of every golden quantity, the tolerances of ``tests/test_golden.py`` against it, and their
margin to the negative controls.

Each golden quantity's relative error (``|actual - expected|`` over ``max|expected|``) is measured once per

- CPU kernel set this machine offers (``ATEN_CPU_CAPABILITY`` = ``default``, ``avx2``, ``avx512``, up to what
  ``torch.backends.cpu.get_cpu_capability()`` reports), one subprocess each, since ATen reads the variable at import;
- text pass: ``cut`` (the project's default, which runs the causal text tower up to the longest EOT only) and
  ``full`` (all 77 positions, as the official code does; forced here by the backbone's ``return_hidden`` path).

It prints, per quantity kind (``tests/test_golden.py: KINDS``), the worst error in every configuration, the
tolerance, and the tolerance over the worst (the rule in ``tests/data/golden/README.md``: at least ``K``). Then
the three negative controls of ``negative_controls.py`` through the same test code: each control's largest
error over its quantity's tolerance, which must be at least ``CONTROL_MARGIN``. Exit status 1 when a rule fails.

Run from the repository root: ``.venv/bin/python tests/data/golden/make/measure_noise.py`` (1 to 3 minutes on
2 cores). ``--capabilities`` prints only the kernel sets this machine offers (``.ci/run`` uses it).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
LEVELS = ("default", "avx2", "avx512")  # ATen's x86 kernel sets, in order
TEXT_PASSES = ("cut", "full")
K = 4  # tolerance >= K x the worst measured error of its kind
CONTROL_MARGIN = 100  # each negative control >= CONTROL_MARGIN x its quantity's tolerance
CONTROLS = {  # make/negative_controls.py: a config value other than the official run's
    "coop_end, class token in the middle": ("coop_end", "TRAINER.COOP.CLASS_TOKEN_POSITION", "middle"),
    "maple, CTX_INIT 'a photo of the'": ("maple", "TRAINER.MAPLE.CTX_INIT", "a photo of the"),
    "restore, FS_LOSS_R 1 (official 0.5)": ("restore", "TRAINER.MAPLE_FSA.FS_LOSS_R", 1.0),
}


def capabilities() -> list:
    """The kernel sets this CPU offers: ``default`` and every x86 level up to the one torch picks."""
    import torch

    native = torch.backends.cpu.get_cpu_capability().lower()
    return list(LEVELS[:LEVELS.index(native) + 1]) if native in LEVELS else ["default"]


@contextlib.contextmanager
def full_text_pass():
    """The text tower over all 77 positions: ``return_hidden=True`` skips the cut after the longest EOT."""
    from clip.backbone import CLIPBackbone

    cut = CLIPBackbone.encode_text_from_embeddings

    def full(self, x, eot_index, deep_prompts=None, return_hidden=False):
        out, hidden = cut(self, x, eot_index, deep_prompts, return_hidden=True)
        return (out, hidden) if return_hidden else out

    CLIPBackbone.encode_text_from_embeddings = full
    try:
        yield
    finally:
        CLIPBackbone.encode_text_from_embeddings = cut


def measure(text_pass: str, controls: bool) -> dict:
    """This process's errors: ``{"errors": {"case|quantity": err}, "exact": {"case|quantity": 0 or inf},
    "controls": {name: [[quantity, err], ...]}}`` (``errors``: the float quantities, ``exact``: the integer ones)."""
    import torch

    import tests.test_golden as tg

    out = {"capability": torch.backends.cpu.get_cpu_capability().lower(), "errors": {}, "exact": {}, "controls": {}}
    with tempfile.TemporaryDirectory(prefix="golden-noise-") as tmp:
        with tg.golden_environment(Path(tmp)) as g:
            with full_text_pass() if text_pass == "full" else contextlib.nullcontext():
                for case, quantity in tg.all_cases():
                    check = g.case(case)[quantity]
                    out["errors" if isinstance(check, tg.Close) else "exact"][f"{case}|{quantity}"] = check.error()
            if controls:
                fixture = tg.fixture
                for name, (case, key, value) in CONTROLS.items():
                    changed = dict(fixture(case), config={**fixture(case)["config"], key: value})
                    tg.fixture = lambda n, case=case, changed=changed: changed if n == case else fixture(n)
                    try:
                        g.results.pop(case, None)
                        quantities = g.case(case)
                        out["controls"][name] = [[q, v.error()] for q, v in quantities.items()
                                                 if isinstance(v, tg.Close)]
                    finally:
                        tg.fixture = fixture
                        g.results.pop(case, None)
    return out


def worker(capability: str, text_pass: str, controls: bool) -> dict:
    env = dict(os.environ, ATEN_CPU_CAPABILITY=capability, PYTHONPATH=str(REPO))
    cmd = [sys.executable, __file__, "--worker", text_pass] + (["--controls"] if controls else [])
    result = json.loads(subprocess.run(cmd, env=env, cwd=REPO, check=True, capture_output=True, text=True).stdout)
    if result["capability"] != capability:  # a number reported is the number of what ran
        sys.exit(f"error: asked for ATEN_CPU_CAPABILITY={capability}, torch ran {result['capability']}")
    return result


def report() -> int:
    import torch

    sys.path.insert(0, str(REPO))
    from tests.test_golden import KINDS, kind, tolerance

    configs = [(c, t) for c in capabilities() for t in TEXT_PASSES]
    runs = {(c, t): worker(c, t, controls=(c, t) == (configs[-1][0], "cut")) for c, t in configs}
    ok = True
    print(f"Relative error (max|actual - expected| / max|expected|), worst per kind; fp32, 1 thread, "
          f"torch {torch.__version__}, native kernels {configs[-1][0]}.\n")
    print("| kind | n | " + " | ".join(f"{c}, {t}" for c, t in configs) + " | worst | at | tolerance | tol/worst |")
    print("|---|---|" + "---|" * len(configs) + "---|---|---|---|")
    for k in KINDS:
        keys = [q for q in runs[configs[0]]["errors"] if kind(q.split("|")[1]) == k]
        cells = [max(runs[c]["errors"][q] for q in keys) for c in configs]
        worst_key, worst = max(((q, runs[c]["errors"][q]) for c in configs for q in keys), key=lambda x: x[1])
        tol = tolerance(worst_key.split("|")[1])
        ratio = tol / worst if worst else float("inf")
        ok &= ratio >= K
        print(f"| {k} | {len(keys)} | " + " | ".join(f"{x:.2e}" for x in cells) +
              f" | {worst:.2e} | {worst_key.replace('|', ' ')} | {tol:.0e} | {ratio:.1f} |")
    unequal = sorted({q for c in configs for q, e in runs[c]["exact"].items() if e})
    ok &= not unequal
    print(f"\nInteger and structural quantities: {len(runs[configs[0]]['exact'])} checks, "
          + (f"NOT equal: {', '.join(unequal)}" if unequal else "equal in every configuration."))
    print(f"\nNegative controls ({configs[-1][0]}, cut): each control's largest error over its quantity's tolerance.\n")
    print("| control | quantity | error | tolerance | error/tol | quantities failing |")
    print("|---|---|---|---|---|---|")
    for name, pairs in runs[(configs[-1][0], "cut")]["controls"].items():
        q, err = max(pairs, key=lambda p: p[1] / tolerance(p[0]))
        failing = sum(e > tolerance(p) for p, e in pairs)
        ok &= err / tolerance(q) >= CONTROL_MARGIN
        print(f"| {name} | {q} | {err:.2e} | {tolerance(q):.0e} | {err / tolerance(q):.0f} "
              f"| {failing} of {len(pairs)} |")
    print(f"\nrule (tolerance >= {K} x worst, controls >= {CONTROL_MARGIN} x tolerance): {'holds' if ok else 'FAILS'}")
    return 0 if ok else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capabilities", action="store_true", help="print the kernel sets this machine offers")
    parser.add_argument("--worker", choices=TEXT_PASSES, help=argparse.SUPPRESS)
    parser.add_argument("--controls", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.capabilities:
        print(" ".join(capabilities()))
        return 0
    if args.worker:
        print(json.dumps(measure(args.worker, args.controls)))
        return 0
    return report()


if __name__ == "__main__":
    sys.exit(main())
