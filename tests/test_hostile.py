"""Hostile and careless inputs across every command: each must end in ONE line on stderr
naming the offending key (or value), exit code 2, nothing on stdout, no traceback, and no
output file or folder left behind.

Each row: an id, the argv (with `{tmp}` for a scratch folder holding the bad files that
`bad_files` writes), and a word the one-line error must contain. The commands run
in-process through `optsched.cli.main` (as the console script does) so that the table
stays fast; `tests/test_cli.py` covers the subprocess contracts.
"""

from __future__ import annotations

import pickle
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import TINY

MARKER = "hostile-marker"


class _Evil:
    """Unpickling this would create a marker file: it must never happen."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def _write_tiny(path: Path, **site_edits) -> str:
    """TINY as TOML at `path`, with keys of its one site replaced; returns the text."""
    import copy

    import tomli_w

    raw = copy.deepcopy(TINY)
    raw["sites"][0].update(site_edits)
    text = tomli_w.dumps(raw)
    path.write_text(text)
    return text


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    text = _write_tiny(d / "tiny.toml")
    (d / "empty.toml").write_text("")
    (d / "syntax.toml").write_text("[horizon\nslots = 2\n")
    (d / "binary.toml").write_bytes(bytes(range(256)) * 4)
    (d / "unknown-key.toml").write_text("colour = 'blue'\n" + text)
    (d / "steps-empty.toml").write_text(_sub(text, "steps = ", "[]"))
    (d / "clocks-empty.toml").write_text(_sub(text, "clocks = ", "[]"))
    (d / "slots-zero.toml").write_text(_sub(text, "slots = ", "0"))
    (d / "gpus-negative.toml").write_text(_sub(text, "gpus = ", "-3"))
    (d / "pue-nan.toml").write_text(_sub(text, "pue = ", "nan"))
    (d / "price-short.toml").write_text(_sub(text, "price = ", "[1.0]"))
    (d / "secret.csv").write_text("TOP-SECRET-LINE\n1;2;3\n")
    (d / "sub").mkdir()
    (d / "outside.csv").write_text("price\n100\n200\n")          # valid, but outside
    _write_tiny(d / "sub" / "csv-escape.toml", price={"csv": "../outside.csv"})
    (d / "sub2").mkdir()
    _write_tiny(d / "sub2" / "csv-absolute.toml", price={"csv": str(d / "outside.csv")})
    _write_tiny(d / "csv-missing.toml", price={"csv": "nope.csv"})
    _write_tiny(d / "csv-secret.toml", price={"csv": "secret.csv", "column": "price"})
    (d / "a-dir.toml").mkdir()
    (d / "not-a-zip.pt").write_bytes(b"this is not a torch file")
    (d / "empty.pt").write_bytes(b"")
    with open(d / "evil.pt", "wb") as f:
        pickle.dump({"actor": _Evil(str(d / MARKER))}, f)
    with zipfile.ZipFile(d / "evil-zip.pt", "w") as z:   # torch's zip layout, evil pickle
        z.writestr("archive/data.pkl", pickle.dumps(_Evil(str(d / MARKER)), protocol=2))
        z.writestr("archive/version", "3\n")
    (d / "metrics.csv").write_text("step,return\n")
    (d / "metrics-huge.csv").write_text("steps,episode_utility\n1e308,5.0\n")
    (d / "metrics-text.csv").write_text("steps,episode_utility\n10,lots\n")
    (d / "a-file").write_text("x")
    (d / "run-empty").mkdir()
    return d


def _sub(text: str, prefix: str, value: str) -> str:
    """Replace the value of the first line starting with `prefix`."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.lstrip().startswith(prefix):
            lines[i] = line[: line.index(prefix) + len(prefix)] + value
            return "\n".join(lines) + "\n"
    raise AssertionError(f"no line starts with {prefix!r}")


OUT = "{tmp}/out-should-not-exist"

# (id, argv, a word the error must contain)
PROBES: list[tuple[str, list[str], str]] = [
    # scenario show / validate / export
    ("show-missing-file", ["scenario", "show", "{tmp}/nope.toml"], "nope.toml"),
    ("show-directory", ["scenario", "show", "{tmp}/a-dir.toml"], "a-dir.toml"),
    ("show-unknown-family", ["scenario", "show", "jemas-4"], "jemas-4"),
    ("show-day-negative", ["scenario", "show", "jemas-3", "--day", "-1"], "-1"),
    ("show-day-too-big", ["scenario", "show", "jemas-3", "--day", "365"], "365"),
    ("show-day-on-file", ["scenario", "show", "{tmp}/tiny.toml", "--day", "3"], "--day"),
    ("show-day-not-int", ["scenario", "show", "jemas-3", "--day", "four"], "--day"),
    ("validate-empty", ["scenario", "validate", "{tmp}/empty.toml"], "missing"),
    ("validate-syntax", ["scenario", "validate", "{tmp}/syntax.toml"], "syntax.toml"),
    ("validate-binary", ["scenario", "validate", "{tmp}/binary.toml"], "binary.toml"),
    ("validate-unknown-key", ["scenario", "validate", "{tmp}/unknown-key.toml"], "colour"),
    ("validate-steps-empty", ["scenario", "validate", "{tmp}/steps-empty.toml"], "steps"),
    ("validate-clocks-empty", ["scenario", "validate", "{tmp}/clocks-empty.toml"], "clocks"),
    ("validate-slots-zero", ["scenario", "validate", "{tmp}/slots-zero.toml"], "slots"),
    ("validate-gpus-negative", ["scenario", "validate", "{tmp}/gpus-negative.toml"], "gpus"),
    ("validate-pue-nan", ["scenario", "validate", "{tmp}/pue-nan.toml"], "pue"),
    ("validate-price-short", ["scenario", "validate", "{tmp}/price-short.toml"], "price"),
    ("validate-csv-escape", ["scenario", "validate", "{tmp}/sub/csv-escape.toml"], "price"),
    ("validate-csv-absolute", ["scenario", "validate", "{tmp}/sub2/csv-absolute.toml"], "price"),
    ("validate-csv-missing", ["scenario", "validate", "{tmp}/csv-missing.toml"], "nope.csv"),
    ("validate-csv-unparseable", ["scenario", "validate", "{tmp}/csv-secret.toml"], "price"),
    ("export-out-under-file", ["scenario", "export", "jemas-3", "--out",
                               "{tmp}/a-file/day.toml"], "--out"),
    ("export-out-unwritable", ["scenario", "export", "jemas-3", "--out",
                               "/proc/optsched-hostile.toml"], "/proc/optsched-hostile.toml"),
    ("export-bad-day", ["scenario", "export", "jemas-3", "--day", "999", "--out",
                        OUT + ".toml"], "999"),
    # scenario build
    ("build-bad-date", ["scenario", "build", "--day", "2023-13-45", "--out", OUT], "--day"),
    ("build-feb-30", ["scenario", "build", "--day", "2023-02-30", "--out", OUT], "--day"),
    ("build-price-clock", ["scenario", "build", "--day", "2023-07-14", "--price-clock",
                           "sideways", "--out", OUT], "--price-clock"),
    ("build-prices-no-equals", ["scenario", "build", "--day", "2023-07-14", "--prices",
                                "pjm.csv", "--out", OUT], "--prices"),
    ("build-pv-not-number", ["scenario", "build", "--day", "2023-07-14", "--pv-kwp",
                             "pjm=lots", "--out", OUT], "--pv-kwp"),
    ("build-pv-negative", ["scenario", "build", "--day", "2023-07-14", "--pv-kwp",
                           "pjm=-3", "--out", OUT], "pjm=-3"),
    # 1e308 overflowed the PV model: a numpy warning and the error on several lines
    ("build-pv-huge", ["scenario", "build", "--day", "2023-07-14", "--pv-kwp", "pjm=1e308",
                       "--out", OUT], "--pv-kwp"),
    ("build-pv-unknown-site", ["scenario", "build", "--day", "2023-07-14", "--pv-kwp",
                               "mars=3", "--out", OUT], "mars"),
    ("build-genai-trace-missing", ["scenario", "build", "--day", "2023-01-05", "--base",
                                   "jemas-3-genai", "--trace", "{tmp}/nosuch.csv", "--out",
                                   OUT], "nosuch.csv: file not found"),
    ("build-base-missing", ["scenario", "build", "--day", "2023-07-14", "--base",
                            "{tmp}/nope.toml", "--out", OUT], "--base"),
    ("build-data-dir-missing", ["scenario", "build", "--day", "2023-07-14", "--data-dir",
                                "{tmp}/no-data", "--out", OUT], "no-data"),
    # solve
    ("solve-max-vars-negative", ["solve", "jemas-3", "--day", "4", "--max-vars", "-1"],
     "--max-vars"),
    ("solve-decompose-gap-tol", ["solve", "multisite-3", "--day", "4", "--decompose",
                                 "--gap-tol", "-1"], "--gap-tol"),
    ("solve-decompose-max-rounds", ["solve", "multisite-3", "--day", "4", "--decompose",
                                    "--max-rounds", "0"], "--max-rounds"),
    ("solve-decompose-cluster-size", ["solve", "multisite-3", "--day", "4", "--decompose",
                                      "--cluster-size", "-2"], "--cluster-size"),
    # An option the chosen solve would ignore is refused, not dropped in silence.
    ("solve-decompose-mip-gap", ["solve", "multisite-3", "--day", "4", "--decompose",
                                 "--mip-gap", "0.01"], "--mip-gap"),
    ("solve-decompose-backend", ["solve", "multisite-3", "--day", "4", "--decompose",
                                 "--backend", "cvxpy"], "--backend"),
    ("solve-gap-tol-without-decompose", ["solve", "{tmp}/tiny.toml", "--relax",
                                         "--gap-tol", "0.01"], "--gap-tol"),
    ("solve-backend", ["solve", "{tmp}/tiny.toml", "--backend", "gurobi"], "--backend"),
    ("solve-time-limit-nan", ["solve", "{tmp}/tiny.toml", "--time-limit", "nan"],
     "--time-limit"),
    ("solve-time-limit-inf", ["solve", "{tmp}/tiny.toml", "--time-limit", "inf"],
     "--time-limit"),
    ("solve-time-limit-negative", ["solve", "{tmp}/tiny.toml", "--time-limit", "-5"],
     "--time-limit"),
    ("solve-mip-gap-negative", ["solve", "{tmp}/tiny.toml", "--mip-gap", "-1"], "--mip-gap"),
    ("solve-mip-gap-nan", ["solve", "{tmp}/tiny.toml", "--mip-gap", "nan"], "--mip-gap"),
    ("solve-ablate", ["solve", "{tmp}/tiny.toml", "--ablate", "no-gravity"], "--ablate"),
    ("solve-clarabel-milp", ["solve", "{tmp}/tiny.toml", "--backend", "cvxpy-clarabel"],
     "--relax"),
    ("solve-out-is-file", ["solve", "{tmp}/tiny.toml", "--relax", "--out", "{tmp}/a-file"],
     "--out"),
    # evaluate
    ("evaluate-unknown-policy", ["evaluate", "jemas-3", "--policy", "oracle-ish"],
     "oracle-ish"),
    ("evaluate-missing-pt", ["evaluate", "jemas-3", "--policy", "{tmp}/nope.pt"], "nope.pt"),
    ("evaluate-not-a-zip-pt", ["evaluate", "jemas-3", "--policy", "{tmp}/not-a-zip.pt"],
     "not-a-zip.pt"),
    ("evaluate-empty-pt", ["evaluate", "jemas-3", "--policy", "{tmp}/empty.pt"], "empty.pt"),
    ("evaluate-evil-pickle", ["evaluate", "jemas-3", "--policy", "{tmp}/evil.pt"],
     "evil.pt"),
    ("evaluate-evil-zip", ["evaluate", "jemas-3", "--policy", "{tmp}/evil-zip.pt"],
     "evil-zip.pt"),
    ("evaluate-days-reversed", ["evaluate", "jemas-3", "--days", "5..3"], "5..3"),
    ("evaluate-days-reversed-2", ["evaluate", "jemas-3", "--days", "9..4"], "9..4"),
    ("evaluate-days-test-0", ["evaluate", "jemas-3", "--days", "test:0"], "test:0"),
    ("evaluate-days-test3", ["evaluate", "jemas-3", "--days", "test3"], "test3"),
    ("evaluate-days-tests", ["evaluate", "jemas-3", "--days", "tests"], "tests"),
    ("evaluate-days-beyond", ["evaluate", "jemas-3", "--days", "364..366"], "366"),
    ("evaluate-days-garbage", ["evaluate", "jemas-3", "--days", "4;rm -rf"], "--days"),
    ("evaluate-day-and-days", ["evaluate", "jemas-3", "--day", "4", "--days", "9"], "--day"),
    ("evaluate-days-on-file", ["evaluate", "{tmp}/tiny.toml", "--days", "1..2"], "--days"),
    ("evaluate-oracle-backend", ["evaluate", "jemas-3", "--day", "4", "--oracle-backend",
                                 "excel"], "--oracle-backend"),
    ("evaluate-ablate", ["evaluate", "jemas-3", "--day", "4", "--ablate", "no-sun"],
     "--ablate"),
    ("evaluate-out-is-file", ["evaluate", "jemas-3", "--day", "4", "--no-oracle", "--out",
                              "{tmp}/a-file"], "--out"),
    # train
    ("train-algo", ["train", "--algo", "dqn", "--out", OUT], "--algo"),
    ("train-steps-zero", ["train", "--steps", "0", "--out", OUT], "--steps"),
    ("train-steps-negative", ["train", "--steps", "-10", "--out", OUT], "--steps"),
    ("train-reward", ["train", "--reward", "candy", "--out", OUT], "--reward"),
    ("train-action", ["train", "--action", "everything", "--out", OUT], "--action"),
    ("train-shaping", ["train", "--shaping", "magic", "--out", OUT], "--shaping"),
    ("train-ppo-shaping", ["train", "--algo", "ppo", "--shaping", "diffusion", "--out", OUT],
     "--shaping"),
    ("train-held-out-days", ["train", "--days", "test", "--out", OUT], "--days"),
    ("train-resume-nothing", ["train", "--algo", "ppo", "--resume", "--out",
                              "{tmp}/run-empty"], "--resume"),
    ("train-checkpoint-every-zero", ["train", "--checkpoint-every", "0", "--out", OUT],
     "--checkpoint-every"),
    ("train-num-envs-zero", ["train", "--num-envs", "0", "--out", OUT], "--num-envs"),
    ("train-scenario-file", ["train", "{tmp}/tiny.toml", "--out", OUT], "SCENARIO"),
    ("train-held-out-genai", ["train", "jemas-3-genai", "--days", "4", "--out", OUT],
     "--days"),
    ("train-provision-no-commit", ["train", "jemas-3", "--action", "provision-battery",
                                   "--days", "train:1", "--out", OUT], "--action"),
    ("train-bc-genai", ["train", "jemas-3-genai", "--algo", "bc", "--out", OUT], "--algo"),
    ("train-init-action-text", ["train", "--algo", "ppo", "--init-action", "a,b", "--out",
                                OUT], "--init-action"),
    ("train-init-action-length", ["train", "jemas-3-genai", "--algo", "ppo", "--action",
                                  "provision-battery", "--init-action", "0,0", "--days",
                                  "train:1", "--out", OUT], "--init-action"),
    ("train-gamma", ["train", "--gamma", "1.5", "--out", OUT], "--gamma"),
    # report / sweep / bench / demo
    ("report-unknown-policy", ["report", "jemas-3", "--policy", "nope", "--out", OUT],
     "nope"),
    ("report-metrics-missing", ["report", "jemas-3", "--metrics", "{tmp}/none.csv", "--out",
                                OUT], "--metrics"),
    ("report-metrics-wrong-columns", ["report", "jemas-3", "--days", "4", "--policy",
                                      "greedy", "--metrics", "{tmp}/metrics.csv", "--out",
                                      OUT], "--metrics"),
    # 1e308 steps made the plot's tick arange fail; text was plotted as categories
    ("report-metrics-huge-steps", ["report", "jemas-3", "--days", "4", "--policy", "greedy",
                                   "--metrics", "{tmp}/metrics-huge.csv", "--out", OUT],
     "--metrics"),
    ("report-metrics-text", ["report", "jemas-3", "--days", "4", "--policy", "greedy",
                             "--metrics", "{tmp}/metrics-text.csv", "--out", OUT],
     "--metrics"),
    # a file as the cache folder failed only after the oracle solve
    ("report-cache-is-a-file", ["report", "jemas-3", "--days", "4", "--policy", "greedy",
                                "--cache", "{tmp}/a-file", "--out", OUT], "--cache"),
    ("report-metrics-binary", ["report", "jemas-3", "--days", "4", "--policy", "greedy",
                               "--metrics", "{tmp}/binary.toml", "--out", OUT], "--metrics"),
    ("report-ablate-policy", ["report", "jemas-3", "--ablate-policy", "ghost", "--out", OUT],
     "--ablate-policy: unknown policy"),
    ("report-days-reversed", ["report", "jemas-3", "--days", "9..4", "--out", OUT], "9..4"),
    ("sweep-param", ["sweep", "jemas-3", "--param", "gravity", "--values", "1", "--out", OUT],
     "--param"),
    ("sweep-values-empty", ["sweep", "jemas-3", "--param", "load", "--values", ",", "--out",
                            OUT], "--values"),
    ("sweep-values-not-number", ["sweep", "jemas-3", "--param", "load", "--values", "abc",
                                 "--out", OUT], "abc"),
    ("sweep-values-negative", ["sweep", "jemas-3", "--param", "load", "--values", "-1",
                               "--out", OUT], "-1"),
    # NaN and inf were reported as the scenario's key (classes[0].arrivals[0])
    ("sweep-values-nan", ["sweep", "jemas-3", "--param", "load", "--values", "1,nan",
                          "--out", OUT], "--values: load takes finite values"),
    # an overflow warning came first; the error named only the scenario's key
    ("sweep-values-overflow", ["sweep", "jemas-3", "--param", "price-level", "--values",
                               "1e308", "--out", OUT],
     "--values: price-level 1e308 makes the scenario invalid (sites[0].price[0]"),
    ("sweep-values-empty-item", ["sweep", "jemas-3", "--param", "load", "--values", "1,,2",
                                 "--out", OUT], "1,,2"),
    ("sweep-model-mix", ["sweep", "jemas-3", "--param", "model-mix", "--values",
                         "sd15,dalle", "--out", OUT], "dalle"),
    ("simulate-counts", ["simulate", "jemas-3", "--counts", "some"], "--counts"),
    ("simulate-burstiness", ["simulate", "jemas-3", "--burstiness", "-2"], "--burstiness"),
    # Gamma draws of shape 1/1e4 all underflow to 0: NaN shares, an internal error.
    ("simulate-burstiness-huge", ["simulate", "jemas-3", "--burstiness", "1e4"],
     "--burstiness"),
    ("simulate-seed-negative", ["simulate", "jemas-3", "--seed", "-1"], "--seed"),
    ("ray-address-garbage", ["solve", "{tmp}/tiny.toml", "--relax", "--backend", "highs",
                             "--ray-address", "garbage"], "--ray-address"),
    # A format spec is not a file name: a huge width ran out of memory.
    ("build-pattern-width", ["scenario", "build", "--day", "2023-07-14", "--data-dir",
                             "{tmp}", "--pattern", "{region:>99999999999}", "--out",
                             "{tmp}/b.toml"], "--pattern"),
    ("build-pattern-attribute", ["scenario", "build", "--day", "2023-07-14", "--data-dir",
                                 "{tmp}", "--pattern", "{region.__class__}", "--out",
                                 "{tmp}/b.toml"], "--pattern"),
    ("simulate-burstiness-nan", ["simulate", "jemas-3", "--burstiness", "nan"],
     "--burstiness"),
    ("simulate-policy", ["simulate", "jemas-3", "--policy", "psychic"], "psychic"),
    ("simulate-days", ["simulate", "jemas-3", "--days", "test:-1"], "test:-1"),
    ("bench-unknown", ["bench", "fastest"], "fastest"),
    ("demo-unknown-policy", ["demo", "--policy", "nope"], "nope"),
    ("evaluate-two-policies", ["evaluate", "jemas-3", "--day", "4", "--policy", "greedy",
                               "--policy", "dispatch"], "--policy"),
    ("build-genai-no-trace", ["scenario", "build", "--day", "2023-01-05", "--base",
                              "jemas-3-genai", "--out", OUT], "--trace"),
    ("build-other-family", ["scenario", "build", "--day", "2023-01-05", "--base",
                            "multisite-4", "--out", OUT], "--base"),
    ("unknown-command", ["launch"], "launch"),
    ("unknown-option", ["solve", "jemas-3", "--turbo"], "--turbo"),
]


@pytest.mark.parametrize(("argv", "word"), [p[1:] for p in PROBES], ids=[p[0] for p in PROBES])
def test_hostile_input_is_one_line_exit_2(argv, word, bad_files, capfd, monkeypatch):
    from optsched import cli

    argv = [a.replace("{tmp}", str(bad_files)) for a in argv]
    word = word.replace("{tmp}", str(bad_files))
    monkeypatch.chdir(bad_files)                  # any cache or stray output lands here
    monkeypatch.setattr(sys, "argv", ["optsched", *argv])
    try:
        with pytest.raises(SystemExit) as exc:
            cli.main()
        out, err = capfd.readouterr()
        assert not (bad_files / MARKER).exists(), "a model file ran code"
    finally:
        (bad_files / MARKER).unlink(missing_ok=True)
    lines = err.strip().splitlines()
    assert exc.value.code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("optsched: ") and "Traceback" not in err
    assert word in lines[0], lines[0]
    assert out == ""
    assert "TOP-SECRET" not in err, "an error echoed a file's contents"
    assert not (bad_files / "out-should-not-exist").exists()
    assert not (bad_files / "out-should-not-exist.toml").exists()
    assert not list((bad_files / "run-empty").iterdir())


def test_the_table_is_large_and_unique():
    assert len(PROBES) >= 50
    assert len({p[0] for p in PROBES}) == len(PROBES)


@pytest.fixture(autouse=True, scope="module")
def _clean_stray_cache(bad_files):
    yield
    shutil.rmtree(bad_files / ".optsched-cache", ignore_errors=True)


def test_an_output_that_is_a_link_or_a_device_is_refused_and_left_as_it_is(tmp_path):
    """`os.replace` would swap a regular file in for a symbolic link, a pipe or a device
    (as root, `--out /dev/full` replaced the device): such a target is refused, exit 2,
    one line naming it, and is left untouched."""
    import os
    import subprocess
    import sys

    target = tmp_path / "elsewhere.toml"
    target.write_text("kept\n")
    link = tmp_path / "link.toml"
    link.symlink_to(target)
    fifo = tmp_path / "pipe.toml"
    os.mkfifo(fifo)
    for out in (link, fifo):
        r = subprocess.run([sys.executable, "-m", "optsched.cli", "scenario", "export",
                            "jemas-3", "--day", "4", "--out", str(out)],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("\n") == 1 and str(out) in r.stderr
    assert link.is_symlink() and target.read_text() == "kept\n"
    assert fifo.is_fifo()


def test_resume_checks_the_days_a_run_folder_claims(tmp_path):
    """`train --resume` took config.json's days on trust: text was an internal error and
    a held-out day was trained on. They are now checked as days given on the command line."""
    import json
    import subprocess
    import sys

    for days, words in (("abc", "--resume: "), ([4], "held-out"), ([None], "--resume: ")):
        run = tmp_path / f"run-{len(words)}-{days!s:.3}"
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"days": days}))
        r = subprocess.run([sys.executable, "-m", "optsched.cli", "train", "--resume",
                            "--out", str(run)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("\n") == 1 and words in r.stderr, r.stderr
