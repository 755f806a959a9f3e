#!/usr/bin/env python3
"""metrics_scrape: the demo's agents serve Prometheus /metrics (issue #14).

Runs symwire_demo with --metrics-port 0 --hold-metrics, scrapes every
agent's /metrics with curl while the orchestrator holds them up, and checks
the numbers against the run: each agent finished exactly the tasks the
orchestrator's summary says it ran (the sum is --tasks), none failed, its
latency histogram counted each of them (cumulative buckets, +Inf == count),
one connection was accepted; HELP and TYPE appear once per family; any
other path or method gets 404; a request with a body or a header over
8 KiB is dropped. Then closes the demo's stdin and expects
"demo ok". Usage: metrics_scrape.py SYMWIRE_DEMO
"""
import re
import select
import subprocess
import sys
import time

TASKS = 400
AGENTS = 2
FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL:", what)


def curl(url, *extra):
    p = subprocess.run(["curl", "-sS", "--max-time", "5", "-w",
                        "\n%{http_code}", *extra, url],
                       capture_output=True, timeout=10)
    out = p.stdout.decode("utf-8", "replace")
    body, _, code = out.rpartition("\n")
    return int(code or 0), body


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """[(name, {labels}, value)], and the HELP/TYPE lines per family."""
    samples, helps, types = [], {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split(" ")[2]
            helps[name] = helps.get(name, 0) + 1
        elif line.startswith("# TYPE "):
            name = line.split(" ")[2]
            types[name] = types.get(name, 0) + 1
        elif line:
            m = SAMPLE.match(line)
            check(m is not None, "unparsable sample line: %r" % line)
            if m:
                labels = dict(LABEL.findall(m.group(3) or ""))
                samples.append((m.group(1), labels, float(m.group(4))))
    return samples, helps, types


def value(samples, name, **labels):
    found = [v for n, l, v in samples
             if n == name and all(l.get(k) == x for k, x in labels.items())]
    check(len(found) == 1, "%s%s: %d samples" % (name, labels, len(found)))
    return found[0] if found else None


def main():
    demo = sys.argv[1]
    p = subprocess.Popen([demo, "--tasks", str(TASKS), "--agents",
                          str(AGENTS), "--no-cut", "--metrics-port", "0",
                          "--hold-metrics"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    out = ""
    deadline = time.monotonic() + 60
    while "metrics: holding" not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([p.stdout], [], [], 1.0)
        if ready:
            chunk = p.stdout.read1(4096).decode("utf-8", "replace")
            if not chunk:
                break
            out += chunk
    print(out)
    check("metrics: holding" in out, "the demo never held its metrics")
    urls = re.findall(r"agent (\d+): metrics (http://127\.0\.0\.1:\d+/metrics)",
                      out)
    check(len(urls) == AGENTS, "%d metrics URLs, want %d" % (len(urls), AGENTS))
    per_agent = re.search(r"per agent: ([\d, /]+) tasks", out)
    check(per_agent is not None, "no per-agent line in the summary")
    ran = [int(x.replace(",", "")) for x in
           per_agent.group(1).split(" / ")] if per_agent else []
    check(sum(ran) == TASKS, "per-agent tasks %s do not sum to %d" %
          (ran, TASKS))
    total_ok = 0
    for (index, url), expected in zip(urls, ran):
        code, body = curl(url)
        check(code == 200, "%s: HTTP %d" % (url, code))
        samples, helps, types = parse(body)
        for family, n in list(helps.items()) + list(types.items()):
            check(n == 1, "family %s: %d HELP/TYPE lines" % (family, n))
        check(set(helps) == set(types), "HELP and TYPE families differ")
        ex = dict(method="", side="executor")
        ok = value(samples, "symwire_tasks_total", result="ok", **ex)
        started = value(samples, "symwire_tasks_total", result="started", **ex)
        errors = value(samples, "symwire_tasks_total", result="error", **ex)
        print("agent %s: ok %s started %s error %s (summary: %d)" %
              (index, ok, started, errors, expected))
        check(ok == expected, "agent %s finished %s tasks, the run says %d" %
              (index, ok, expected))
        check(started == expected and errors == 0,
              "agent %s: started %s, errors %s" % (index, started, errors))
        total_ok += ok or 0
        count = value(samples, "symwire_task_duration_seconds_count", **ex)
        check(count == expected, "agent %s: histogram count %s" %
              (index, count))
        buckets = [(l["le"], v) for n, l, v in samples
                   if n == "symwire_task_duration_seconds_bucket"]
        check(len(buckets) > 2 and buckets[-1][0] == "+Inf" and
              buckets[-1][1] == count, "agent %s: +Inf bucket" % index)
        check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])),
              "agent %s: buckets not cumulative" % index)
        check(value(samples, "symwire_server_events_total",
                    event="connections_accepted") == 1,
              "agent %s: connections_accepted" % index)
        check(value(samples, "symwire_connection_events_total",
                    event="accepted") == 1, "agent %s: accepted hook" % index)
        # The request bytes: each task's payload is "doc <i>" (demo.cpp).
        bytes_in = value(samples, "symwire_task_bytes_total", direction="in",
                         **ex)
        check(bytes_in is not None and bytes_in >= 5 * expected,
              "agent %s: bytes in %s" % (index, bytes_in))
        base = url[:-len("/metrics")]
        check(curl(base + "/other")[0] == 404, "/other is not 404")
        check(curl(url, "-X", "POST")[0] == 404, "POST /metrics is not 404")
        # Bounded requests: a body or a header over 8 KiB is dropped
        # unanswered (curl reports no HTTP status: 0).
        check(curl(url, "-d", "x")[0] == 0, "a request body was answered")
        check(curl(url, "-H", "X-Big: " + "a" * 9000)[0] == 0,
              "a 9 KB request header was answered")
    check(total_ok == TASKS, "agents finished %s tasks, want %d" %
          (total_ok, TASKS))
    p.stdin.close()
    rest = p.stdout.read().decode("utf-8", "replace")
    p.wait(timeout=30)
    print(rest)
    check(p.returncode == 0 and "demo ok" in rest,
          "demo exit %s" % p.returncode)
    if FAILURES:
        print("%d failures" % len(FAILURES))
        return 1
    print("metrics scrape ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
