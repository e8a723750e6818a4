#!/usr/bin/env python3
"""Process accounting for the benchmark harness (standard library only).

Subcommands:
  snap FILE                 save a CPU snapshot (system busy time + every process)
  others FILE ROOTPID       compare with the snapshot in FILE: print the CPU (in
                            cores) used meanwhile by processes outside ROOTPID's
                            tree, then loadavg and the busiest outsiders:
                            "<cores> <loadavg1> <top: comm(pid)=cores,...>"
  status PID                print "<VmRSS kB> <VmHWM kB>"
  rss PID STOPFILE OUT      sample VmRSS every 20 ms until STOPFILE exists, then
                            write "<max VmRSS kB> <VmHWM kB>" to OUT
  maxrss OUT CMD [ARG...]   run CMD (stdout and stderr passed through), then
                            write "<exit code> <wall seconds> <peak RSS kB>" to
                            OUT, the peak being the kernel's exact ru_maxrss of
                            the child (wait4), and exit with CMD's exit code
"""

import json
import os
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")


def read_procs():
    procs = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                raw = f.read()
        except OSError:
            continue
        # comm may contain spaces and parentheses: split on the last ')'.
        lp, rp = raw.index("("), raw.rindex(")")
        comm = raw[lp + 1 : rp]
        rest = raw[rp + 2 :].split()
        ppid = int(rest[1])
        utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
        start = int(rest[19])
        procs[int(entry)] = {
            "ppid": ppid,
            "comm": comm,
            "start": start,
            "own": utime + stime,
            "all": utime + stime + cutime + cstime,
        }
    return procs


def busy_ticks():
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    v = [int(x) for x in fields]
    # user nice system idle iowait irq softirq steal (guest is inside user)
    return v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)


def snapshot():
    return {"t": time.monotonic(), "busy": busy_ticks(), "procs": read_procs()}


def tree(procs, root):
    children = {}
    for pid, p in procs.items():
        children.setdefault(p["ppid"], []).append(pid)
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        out.add(pid)
        todo.extend(children.get(pid, []))
    return {pid for pid in out if pid in procs}


def cmd_snap(path):
    s = snapshot()
    s["procs"] = {str(k): v for k, v in s["procs"].items()}
    with open(path, "w") as f:
        json.dump(s, f)


def cmd_others(path, root):
    root = int(root)
    with open(path) as f:
        old = json.load(f)
    old["procs"] = {int(k): v for k, v in old["procs"].items()}
    new = snapshot()
    elapsed = max(new["t"] - old["t"], 1e-3)
    mine_old = tree(old["procs"], root)
    mine_new = tree(new["procs"], root)
    ours = sum(new["procs"][p]["all"] for p in mine_new) - sum(
        old["procs"][p]["all"] for p in mine_old
    )
    others = (new["busy"] - old["busy"]) - ours
    cores = max(others, 0) / HZ / elapsed
    top = []
    for pid, p in new["procs"].items():
        if pid in mine_new:
            continue
        q = old["procs"].get(pid)
        if q is None or q["start"] != p["start"]:
            delta = p["own"]  # started during the window
        else:
            delta = p["own"] - q["own"]
        if delta > 0:
            top.append((delta / HZ / elapsed, p["comm"], pid))
    top.sort(reverse=True)
    with open("/proc/loadavg") as f:
        load1 = f.read().split()[0]
    desc = ",".join(f"{c}({pid})={v:.2f}" for v, c, pid in top[:3] if v >= 0.05) or "-"
    print(f"{cores:.2f} {load1} {desc}")


def status(pid):
    rss = hwm = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def cmd_rss(pid, stopfile, out):
    peak = 0
    hwm = 0
    while True:
        try:
            rss, hwm = status(pid)
        except OSError:
            break
        peak = max(peak, rss)
        if os.path.exists(stopfile):
            break
        time.sleep(0.02)
    with open(out, "w") as f:
        f.write(f"{peak} {hwm}\n")


def cmd_maxrss(out, *cmd):
    t0 = time.monotonic()
    child = subprocess.Popen(cmd)
    _, status, usage = os.wait4(child.pid, 0)
    secs = time.monotonic() - t0
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4
    with open(out, "w") as f:
        f.write(f"{child.returncode} {secs:.4f} {usage.ru_maxrss}\n")
    return child.returncode


def main(argv):
    cmd, args = argv[0], argv[1:]
    if cmd == "snap":
        cmd_snap(*args)
    elif cmd == "others":
        cmd_others(*args)
    elif cmd == "status":
        print(*status(args[0]))
    elif cmd == "rss":
        cmd_rss(*args)
    elif cmd == "maxrss":
        rc = cmd_maxrss(*args)
        sys.exit(rc if rc >= 0 else 128 - rc)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
