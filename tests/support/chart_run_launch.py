"""Start one container's process the way the runtime would: run as root under
`unshare --mount --propagation private`, standard library only, then exec the process.

    python chart_run_launch.py SPEC.json

SPEC: {"layer", "mounts": [{"host", "path", "read_only"}], "workdir", "uid", "gid",
"groups", "no_new_privs", "argv", "env", "image": [paths the image stand-in needs]}.

The root filesystem is an overlay of the host's `/` (changes go to a tmpfs in `layer`, so
mount points can be made without touching the host), with each volume bound at its
mountPath, /dev, /proc and /sys bound in, and then the whole root remounted read-only:
only the volumes (and /dev/shm, as in a pod) are writable. Then chroot, and `setpriv`
to the container's user with no capabilities.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def inside(root: str, path: str) -> str:
    """`path` as seen inside `root` (symlinks followed within it), made if missing."""
    current, parts, hops = root, [p for p in path.split("/") if p], 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = os.path.dirname(current) if current != root else root
            continue
        candidate = os.path.join(current, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > 40:
                raise OSError(f"too many symlinks under {path}")
            target = os.readlink(candidate)
            parts = [p for p in target.split("/") if p] + parts
            current = root if target.startswith("/") else current
            continue
        if not os.path.exists(candidate):
            os.mkdir(candidate)
        current = candidate
    return current


def reach_interpreter(root: str) -> None:
    """The image keeps Python under /usr/local; this venv's interpreter may sit under a
    0700 home (pyenv in /root). Open the way to it in the overlay only (a copy-up into the
    tmpfs layer), so that the container's user can run what the image would give it."""
    for path in {os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix)}:
        current = "/"
        for part in [p for p in path.split("/") if p][:-1]:
            current = os.path.join(current, part)
            if os.path.isdir(current) and not os.stat(current).st_mode & 0o001:
                os.chmod(root + current, os.stat(current).st_mode | 0o005)


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    layer = spec["layer"]
    mount("-t", "tmpfs", "chart-run", layer)
    root, upper, work = (os.path.join(layer, d) for d in ("root", "upper", "work"))
    for d in (root, upper, work):
        os.mkdir(d)
    mount("-t", "overlay", "chart-run", "-o", f"lowerdir=/,upperdir={upper},workdir={work}", root)
    for m in sorted(spec["mounts"], key=lambda m: m["path"].count("/")):
        target = inside(root, m["path"])
        mount("--bind", m["host"], target)
        if m["read_only"]:
            mount("-o", "remount,bind,ro", target)
    volumes = [m["path"].rstrip("/") for m in spec["mounts"]]
    for path in spec.get("image", []):
        # A volume mounted above the image's own files (the venv standing in for it) must
        # not hide them: bind them back, read-only, at their place inside the volume.
        if any(path == v or path.startswith(v + "/") for v in volumes):
            target = inside(root, path)
            mount("--bind", path, target)
            mount("-o", "remount,bind,ro", target)
    for system in ("/dev", "/proc", "/sys"):
        mount("--rbind", system, inside(root, system))
    inside(root, spec["workdir"])  # the runtime makes a missing workingDir
    reach_interpreter(root)
    mount("-o", "remount,bind,ro", root)
    os.chroot(root)
    os.chdir(spec["workdir"])
    groups = ",".join(str(g) for g in spec["groups"])
    setpriv = ["setpriv", f"--reuid={spec['uid']}", f"--regid={spec['gid']}"]
    setpriv += [f"--groups={groups}"] if groups else ["--clear-groups"]
    setpriv += ["--inh-caps=-all", "--bounding-set=-all"]
    setpriv += ["--no-new-privs"] if spec["no_new_privs"] else []
    os.execvpe("/usr/bin/setpriv", [*setpriv, "--", *spec["argv"]], spec["env"])


if __name__ == "__main__":
    main(sys.argv[1])
