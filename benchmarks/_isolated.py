"""Run one benchmark case in a fresh process so that its peak resident memory is its own."""
import json
import resource
import subprocess
import sys


def peak_rss_gib():
    """This process's peak resident set size (ru_maxrss, KiB on Linux) in GiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def report(**fields):
    """What a child prints: one JSON line, with its peak RSS added."""
    print(json.dumps(dict(fields, rss_gib=peak_rss_gib())))


def run_isolated(script, *args):
    """Run ``python script --case *args``; return its JSON line as a dict, or raise with its last error line."""
    out = subprocess.run([sys.executable, script, "--case", *map(str, args)], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr.strip().splitlines()[-1])
    return json.loads(out.stdout.strip().splitlines()[-1])
