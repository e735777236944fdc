//! Time to index a catalog of 150 templates / 400 versions, and to render one version of
//! each format (median of several runs). `cargo run --release -p catalog --example bench
//! [TEMPLATES VERSIONS RUNS]`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

fn median(mut d: Vec<Duration>) -> Duration {
    d.sort();
    d[d.len() / 2]
}

fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    median(
        (0..runs)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(f());
                start.elapsed()
            })
            .collect(),
    )
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let templates = args.first().copied().unwrap_or(150);
    let versions = args.get(1).copied().unwrap_or(400);
    let runs = args.get(2).copied().unwrap_or(11).max(1);
    let files = catalog::synthetic_catalog(templates, versions);
    let bytes: usize = files.values().map(Vec::len).sum();
    let index = catalog::index("bench", &files);
    assert!(index.problems.is_empty(), "{:?}", index.problems);
    let indexing = time(runs, || catalog::index("bench", &files));
    println!(
        "index: {templates} templates, {versions} versions, {} files, {} KiB: {:.2} ms (median of {runs})",
        files.len(),
        bytes / 1024,
        indexing.as_secs_f64() * 1e3
    );
    // One of each kind: a Drover template, a Rancher one with a .tpl file, a plain Rancher one.
    for name in ["app000", "app001", "app003"] {
        let Some(t) = index.templates.get(name) else {
            continue;
        };
        let Some(v) = t.latest() else { continue };
        let mut byte = 0u8;
        let mut random = |b: &mut [u8]| {
            for x in b {
                byte = byte.wrapping_add(101);
                *x = byte;
            }
        };
        let answers = match catalog::resolve_answers(
            &v.questions,
            &BTreeMap::new(),
            &BTreeMap::new(),
            &[],
            &mut random,
        ) {
            Ok(a) => a,
            Err(e) => panic!("{name}: {e:?}"),
        };
        let kind = match (t.format, v.compose.is_template()) {
            (catalog::Format::Drover, _) => "Drover",
            (_, true) => "Rancher .tpl",
            (_, false) => "Rancher",
        };
        let rendering = time(runs * 10, || {
            catalog::render(t, &v.version, &answers, "bench").map(|r| r.project.services.len())
        });
        println!(
            "render {name} {} ({kind}, compose file of {} lines): {:.3} ms (median of {})",
            v.version,
            v.compose.text.lines().count(),
            rendering.as_secs_f64() * 1e3,
            runs * 10
        );
    }
}
