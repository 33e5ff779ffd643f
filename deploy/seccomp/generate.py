#!/usr/bin/env python3
"""Generates deploy/seccomp/warden.json, the seccomp profile for the *container* Warden runs in.

    python3 deploy/seccomp/generate.py            # rewrite warden.json
    python3 deploy/seccomp/generate.py --check    # exit 1 if warden.json is out of date (CI)

Two filters stack on every sandboxed program: this container profile (installed by the
container runtime: Kubernetes `seccompProfile: Localhost`, `docker --security-opt seccomp=`)
and Warden's own L2 allowlist (crates/sandbox/src/seccomp_policy.rs, installed last, right
before execve). The kernel applies the stricter answer of the two.

This profile is therefore Warden's own allowlist (read from the Rust source, so the two cannot
drift apart) plus what Warden itself needs *outside* the sandbox's filter: the server and the
supervisor, and the sandbox's init while it builds the namespaces (the calls in SUPERVISOR
below, each with its reason). Everything else is answered EPERM, as the runtimes' default
profiles do. Compared with the runtime default (Docker's or containerd's) it allows
unshare/mount/umount2/pivot_root/sethostname without CAP_SYS_ADMIN (the container has no
CAP_SYS_ADMIN; these act only inside the new user namespace Warden creates, where the
kernel checks its capabilities), and it denies much that the default allows and Warden never
uses (ptrace, process_vm_*, inotify, keyctl, io_uring, name_to_handle_at, ...).

Argument filters of the inner policy (socket families, personality values, clone flags) are
not repeated here: the server needs sockets the sandbox does not, and the inner filter already
applies them to sandboxed code.
"""

import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
POLICY = ROOT / "crates/sandbox/src/seccomp_policy.rs"
OUT = pathlib.Path(__file__).resolve().parent / "warden.json"

# Needed by `warden serve` / `warden run` and the sandbox's init, outside the inner filter.
# Found by experiment (deploy/README.md, "How the relaxations were found"): each entry was
# removed in turn and the failing step noted.
SUPERVISOR = {
    # Sandbox setup: the init unshares user, mount, network, PID, IPC, UTS and cgroup
    # namespaces; with CLONE_NEWUSER in the same call the kernel creates the user namespace
    # first and checks every other flag against the capabilities held *in it*
    # (user_namespaces(7)), so no capability of the container is used.
    "unshare": "init: create the sandbox's namespaces (runtime defaults allow it only with CAP_SYS_ADMIN)",
    "mount": "init: tmpfs root, read-only binds, /proc and /dev inside the sandbox's own mount namespace",
    "umount2": "init: detach the old root after pivot_root",
    "pivot_root": "init: switch into the sandbox's tmpfs root",
    "sethostname": "init: the sandbox's hostname, in its own UTS namespace",
}

ARCHES = {
    # Native ABI only: 32-bit and x32 syscall tables are a separate attack surface, and the
    # inner filter kills non-native ABIs anyway.
    "x86_64": ["SCMP_ARCH_X86_64"],
    "aarch64": ["SCMP_ARCH_AARCH64"],
}


def inner_allowlist() -> list[str]:
    text = POLICY.read_text()
    start = text.index("pub static ALLOWED")
    end = text.index("pub static MUST_DENY")
    names = re.findall(r'(?:any\(|name: )"([a-z0-9_]+)"', text[start:end])
    if len(names) < 100:
        sys.exit(f"generate.py: only {len(names)} syscalls parsed from {POLICY}; has its format changed?")
    return sorted(set(names))


def profile() -> dict:
    inner = inner_allowlist()
    extra = {k: v for k, v in SUPERVISOR.items() if k not in inner}
    return {
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": ARCHES["x86_64"] + ARCHES["aarch64"],
        "syscalls": [
            {
                "names": inner,
                "action": "SCMP_ACT_ALLOW",
                "comment": "Warden's own L2 allowlist (crates/sandbox/src/seccomp_policy.rs ALLOWED); argument filters applied by the inner filter",
            },
        ]
        + [
            {"names": [name], "action": "SCMP_ACT_ALLOW", "comment": why}
            for name, why in sorted(extra.items())
        ],
    }


def main() -> int:
    text = json.dumps(profile(), indent=2) + "\n"
    if "--check" in sys.argv[1:]:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run python3 {pathlib.Path(__file__).relative_to(ROOT)}", file=sys.stderr)
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
