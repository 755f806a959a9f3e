#!/usr/bin/env python3
"""The command line of every program the project builds (issue #12, part 4).

  cli_test.py NAME=PATH [NAME=PATH ...]

For each program: `--help` exits 0 with the usage on stdout, nothing on
stderr, and a line for every flag the program has (FLAGS below); an unknown
flag, a bad value and a missing value each exit 2 with a message on stderr
that names the flag (and the value), and nothing on stdout. NAME selects the
expectations; "symwire-soak-net" is symwire-soak built with the transports.
Standard library only.
"""

import os
import subprocess
import sys

E2E = ["--role", "--transport", "--address", "--payload", "--mode",
       "--seconds", "--messages", "--warmup", "--connections", "--window",
       "--rate", "--pin", "--label", "--spin-us", "--checksums"]
SOAK = ["--tasks", "--seed", "--cut-every", "--partials", "--payload",
        "--window", "--replay-frames", "--agent-max-tasks", "--dial-fail-pct",
        "--half-open-pct", "--max-sim-seconds", "--max-seconds", "--no-close",
        "--verbose"]
SOAK_NET = ["--transport", "--proxy-faults", "--role", "--listen",
            "--connect", "--exit-after-sessions", "--ready-file", "--tls-cert",
            "--tls-key", "--tls-ca-out", "--tls-ca"]

# name: (flags --help must list, a flag taking a value (or None), a bad value)
PROGRAMS = {
    "symwire-dump": (["--hex", "--pcap", "--port", "--reorder-bytes", "--json",
                      "--payload-bytes", "--no-preface", "--max-header-bytes",
                      "--max-payload-bytes", "--quiet"], "--port", "abc"),
    "symwire-soak": (SOAK, "--tasks", "12x"),
    "symwire-soak-net": (SOAK + SOAK_NET, "--tasks", "12x"),
    "symwire-bench-e2e": (E2E, "--payload", "abc"),
    "raw-tcp-bench": (E2E, "--payload", "abc"),
    "zmq-bench": (E2E, "--payload", "abc"),
    "grpc-bench": (E2E, "--payload", "abc"),
    "symwire_demo": (["--tasks", "--agents", "--parts", "--window", "--no-cut",
                      "--metrics-port", "--hold-metrics",
                      "--agent"], "--agents", "65"),
    "symwire_codec_demo": (["--frames"], "--frames", "-3"),
    "stdio_orchestrator": ([], None, None),
    "ws_agent": (["--serve"], None, None),
    "symwire-nats-bench": (["--url", "--tasks", "--window", "--rounds",
                           "--payloads", "--agents"], "--tasks", "0"),
}

FAILURES = []


def check(cond, what, output=""):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what)
        if output:
            print("---- output ----\n" + output + "\n---- end ----")


def run(path, args):
    p = subprocess.run([path] + args, capture_output=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def usage_error(name, path, args, must_name):
    rc, out, err = run(path, args)
    check(rc == 2, f"{name} {args}: exit {rc} (want 2)", out + err)
    check(out == "", f"{name} {args}: nothing on stdout", out)
    for word in must_name:
        check(word in err, f"{name} {args}: stderr names {word!r}", err)


def test(name, path):
    flags, value_flag, bad_value = PROGRAMS[name]
    if not os.access(path, os.X_OK):
        check(False, f"{name}: {path} is not an executable (not built?)")
        return
    program = name.replace("-net", "")
    rc, out, err = run(path, ["--help"])
    check(rc == 0, f"{name} --help: exit {rc} (want 0)", out + err)
    check(out.startswith(f"usage: {program}"), f"{name} --help: usage line "
          "on stdout", out)
    check(err == "", f"{name} --help: nothing on stderr", err)
    lines = out.splitlines() + [""]
    for flag in flags + ["--help"]:
        # The flag starts a line of the flag list (after the indentation);
        # a long one has its description on the next line.
        at = [i for i, l in enumerate(lines)
              if l.startswith("  ") and (l.split() or [""])[0] in
              (flag, "-h,") and flag in l.split()[:2]]
        check(at, f"{name} --help: a line for {flag}", out)
        if at and flag != "--help":
            text = lines[at[0]]
            if lines[at[0] + 1].startswith("    "):
                text += lines[at[0] + 1]
            check("(default: " in text,
                  f"{name} --help: {flag} states its default", text)
    rc2, out2, _ = run(path, ["-h"])
    check(rc2 == 0 and out2 == out, f"{name} -h: same as --help", out2)
    usage_error(name, path, ["--bogus-flag"], ["--bogus-flag"])
    usage_error(name, path, ["--bogus-flag=3"], ["--bogus-flag"])
    if value_flag:
        usage_error(name, path, [value_flag, bad_value],
                    [value_flag, f"'{bad_value}'"])
        usage_error(name, path, [f"{value_flag}={bad_value}"],
                    [value_flag, f"'{bad_value}'"])
        usage_error(name, path, [value_flag], [value_flag, "needs a value"])


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    for spec in sys.argv[1:]:
        name, _, path = spec.partition("=")
        if name not in PROGRAMS:
            print(f"unknown program {name!r}")
            return 2
        test(name, path)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed")
        return 1
    print(f"all ok ({len(sys.argv) - 1} programs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
