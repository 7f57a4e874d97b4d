//! Criterion benchmarks of the domain's hot pure functions.

use criterion::{Criterion, criterion_group, criterion_main};

fn identifiers(c: &mut Criterion) {
    c.bench_function("orgnr_parse", |b| {
        b.iter(|| lots_domain::OrgNr::parse(std::hint::black_box("556036-0793")))
    });
}

criterion_group!(benches, identifiers);
criterion_main!(benches);
