//! Policy decision cost: a literal-address URL end to end (parse + checks), a denied one,
//! and a bare address check. Target (issue): well under 10 µs per URL decision.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use warden_egress::{AddressPolicy, UrlPolicy};

fn bench(c: &mut Criterion) {
    let policy = UrlPolicy::default();
    c.bench_function("url_check_literal_allowed", |b| {
        b.iter(|| policy.check_url(black_box("https://93.184.215.14/index.html?q=1")))
    });
    c.bench_function("url_check_literal_denied_metadata", |b| {
        b.iter(|| policy.check_url(black_box("http://169.254.169.254/latest/meta-data/")))
    });
    c.bench_function("url_check_mapped_ipv6_denied", |b| {
        b.iter(|| policy.check_url(black_box("http://[::ffff:127.0.0.1]/")))
    });
    let addresses = AddressPolicy::default();
    let v6: IpAddr = "2606:4700::1111".parse().unwrap_or(IpAddr::from([0u8; 16]));
    c.bench_function("address_check_ipv6_public", |b| {
        b.iter(|| addresses.check(black_box(v6)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
