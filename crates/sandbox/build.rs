//! Compiles the seccomp policy (`src/seccomp_policy.rs`) to a BPF program for the target
//! architecture, written to `$OUT_DIR/seccomp.bpf` and embedded by `seccomp::embedded`.

use std::path::PathBuf;

#[allow(dead_code)]
#[path = "src/seccomp_rules.rs"]
mod seccomp_rules;

fn main() {
    println!("cargo:rerun-if-changed=src/seccomp_rules.rs");
    println!("cargo:rerun-if-changed=src/seccomp_policy.rs");
    let target = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let arch = match target.as_str() {
        "x86_64" => libseccomp::ScmpArch::X8664,
        "aarch64" => libseccomp::ScmpArch::Aarch64,
        "riscv64" => libseccomp::ScmpArch::Riscv64,
        "s390x" => libseccomp::ScmpArch::S390X,
        "powerpc64" => libseccomp::ScmpArch::Ppc64Le,
        other => panic!("warden-sandbox: no seccomp policy for target architecture `{other}`"),
    };
    let filter = match seccomp_rules::build_filter(arch) {
        Ok(filter) => filter,
        Err(e) => panic!("warden-sandbox: cannot compile the seccomp policy: {e} ({e:?})"),
    };
    let out = match std::env::var_os("OUT_DIR") {
        Some(dir) => PathBuf::from(dir).join("seccomp.bpf"),
        None => panic!("OUT_DIR is not set"),
    };
    let file = match std::fs::File::create(&out) {
        Ok(file) => file,
        Err(e) => panic!("cannot create {}: {e}", out.display()),
    };
    if let Err(e) = filter.export_bpf(&file) {
        panic!("cannot export the seccomp BPF program: {e}");
    }
}
